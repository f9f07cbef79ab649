"""dltrain serve: a run's model over HTTP on 127.0.0.1, answering JSON batches as predict does."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from dltrain.cli.common import (
    RecipeOption,
    RunOption,
    SetOption,
    collect_overrides,
    reported_errors,
    workdir,
)
from dltrain.console import make_console
from dltrain.errors import UsageError
from dltrain.runs import resolve_recipe_and_run

DEFAULT_MAX_BODY = 1_048_576


def serve(
    recipe: RecipeOption = None,
    run: RunOption = None,
    host: Annotated[
        str,
        typer.Option(
            "--host",
            help="Address to listen on. The default answers this machine only; 0.0.0.0 opens "
            "the server to the network (it has no authentication: put a proxy in front).",
        ),
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="Port to listen on (0: a free one).")
    ] = 8000,
    max_body: Annotated[
        int,
        typer.Option(
            "--max-body",
            min=1,
            help="Largest request body in bytes; a larger one gets 413 and the server goes on.",
        ),
    ] = DEFAULT_MAX_BODY,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Examples per model call.")
    ] = 256,
    sets: SetOption = None,
) -> None:
    """Serve a run's model over HTTP: GET /health, GET /metadata, POST /predict (a JSON batch
    of raw inputs in, predict's columns out). Stops on SIGTERM or Ctrl-C after answering the
    requests in flight."""
    console = make_console()
    with reported_errors(console):
        _require_server_libraries()
        _, run_dir = resolve_recipe_and_run(recipe, run, workdir(), collect_overrides(sets))
        from dltrain.serving.app import bind

        try:
            sock = bind(host, port)
        except OSError as exc:
            raise UsageError(
                f"Cannot listen on {host}:{port} ({exc.strerror or exc}). The port is taken or "
                f"the address is not this machine's; choose another with --port (0 picks a free "
                f"one) or --host."
            ) from None
        with sock:
            with console.status("Loading TensorFlow and the model …"):
                from dltrain.serving.app import serve_forever
                from dltrain.serving.service import ServeSettings, open_service

                service = open_service(ServeSettings(run_dir, batch_size, max_body))
            address = sock.getsockname()
            shown = f"[{address[0]}]" if ":" in address[0] else address[0]
            console.print(
                f"[green]Serving[/] run {run_dir.name} ({service.run.task}) on "
                f"http://{shown}:{address[1]}: GET /health, GET /metadata, POST /predict. Stop "
                f"with Ctrl-C or SIGTERM.",
                highlight=False,
            )
            _log_to()
            serve_forever(service, sock)
        console.print(f"Stopped serving run {run_dir.name}.", highlight=False)


def _require_server_libraries() -> None:
    """Raises: UsageError naming the extra to install when uvicorn or Starlette is missing."""
    import importlib

    missing = []
    for name in ("uvicorn", "starlette"):
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise UsageError(
            f"dltrain serve runs on uvicorn and Starlette, and {' and '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not installed. Install the serving extra: "
            f"pip install 'dltrain[serve]'."
        )


def _log_to() -> None:
    """The server's own log lines (an internal error on a request) go to stderr."""
    import os

    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    log = logging.getLogger("dltrain.serve")
    log.addHandler(handler)
    log.setLevel(logging.DEBUG if os.environ.get("DLTRAIN_DEBUG") else logging.INFO)
