"""The dltrain command line. Light: nothing here imports TensorFlow (commands do, when run)."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from dltrain import __version__
from dltrain.cli.compare import compare
from dltrain.cli.evaluate import evaluate
from dltrain.cli.examples import examples_epilog
from dltrain.cli.export import export
from dltrain.cli.find_lr import find_lr
from dltrain.cli.init import init
from dltrain.cli.predict import predict
from dltrain.cli.prepare import prepare
from dltrain.cli.runs import runs
from dltrain.cli.serve import serve
from dltrain.cli.train import train
from dltrain.cli.tune import tune
from dltrain.cli.verify import verify

app = typer.Typer(
    name="dltrain",
    help="From a raw dataset to a trained, evaluated Keras model: "
    "dltrain prepare && dltrain train && dltrain evaluate",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dltrain {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks and TensorFlow's own log output.")
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    if debug:
        os.environ["DLTRAIN_DEBUG"] = "1"


app.command(epilog=examples_epilog("init"))(init)
app.command(epilog=examples_epilog("prepare"))(prepare)
app.command(epilog=examples_epilog("train"))(train)
app.command(epilog=examples_epilog("evaluate"))(evaluate)
app.command(epilog=examples_epilog("predict"))(predict)
app.command(epilog=examples_epilog("serve"))(serve)
app.command(epilog=examples_epilog("export"))(export)
app.command(epilog=examples_epilog("runs"))(runs)
app.command("find-lr", epilog=examples_epilog("find-lr"))(find_lr)
app.command(epilog=examples_epilog("tune"))(tune)
app.command(epilog=examples_epilog("verify"))(verify)
app.command(epilog=examples_epilog("compare"))(compare)


def main() -> None:
    app()
