"""Real examples closing every command's ``--help``. Light: plain strings, nothing imported.

Each example is a command line a user can paste, then what it does; a test runs every one with
``--help`` appended, so an example naming an option that no longer exists fails the suite.
"""

from __future__ import annotations

EXAMPLES: dict[str, list[tuple[str, str]]] = {
    "init": [
        ("dltrain init sales.csv --target churned", "a starter dltrain.yaml for a table"),
        ("dltrain init photos/ --name flowers", "class folders of images"),
        ("dltrain init weather.csv -t temp --task forecasting", "a series: windows of dates"),
    ],
    "prepare": [
        ("dltrain prepare", "the recipe in ./dltrain.yaml into data/<name>/"),
        ("dltrain prepare --recipe adult_income --strict", "fail (exit 1) on a profile warning"),
        ("dltrain prepare --set data.split.test=0.2 --force", "another split, prepared again"),
    ],
    "train": [
        ("dltrain train", "train the recipe's model on its prepared data"),
        ("dltrain train --epochs 50 --lr 0.003 --lr-schedule cosine", "override the recipe"),
        ("dltrain train --folds 5 --json", "5-fold cross-validation, the folds' mean ± sd"),
    ],
    "evaluate": [
        ("dltrain evaluate", "the latest run on the test split, beside its baselines"),
        ("dltrain evaluate --require 'accuracy>=baseline.gbm.accuracy'", "a CI gate (exit 1)"),
        ("dltrain evaluate --bootstrap 1000 --format model-card", "intervals, MODEL_CARD.md"),
    ],
    "predict": [
        ("dltrain predict --input new.csv --output scored.csv", "raw rows in, predictions out"),
        ("dltrain predict -i photos/ -o labels.csv --run runs/flowers/<id>", "one run's model"),
        ("dltrain predict -i photos/ -o labels.csv --tta 4", "average 4 flipped/shifted views"),
    ],
    "serve": [
        ("dltrain serve", "the latest run over HTTP on 127.0.0.1:8000"),
        ("dltrain serve --port 9000 --max-body 1048576", "another port, a 1 MiB body limit"),
    ],
    "export": [
        ("dltrain export --format saved_model", "a SavedModel that takes raw inputs"),
        ("dltrain export --format tflite --format onnx --json", "two formats, checked"),
        ("dltrain export --format tflite --quantize int8", "int8, refused if accuracy drops"),
    ],
    "runs": [
        ("dltrain runs", "the recipe's runs, newest first, with their key metrics"),
        ("dltrain runs --sort accuracy --limit 5 --json", "the five best"),
    ],
    "find-lr": [
        ("dltrain find-lr", "a learning-rate range test, with a suggested rate"),
        ("dltrain find-lr --start-lr 1e-6 --end-lr 1 --steps 200", "a wider, finer sweep"),
    ],
    "tune": [
        ("dltrain tune --trials 30", "search the recipe's tune.space"),
        ("dltrain tune --trials 20 --jobs 2 --new-study", "two at once, a fresh study"),
        ("dltrain tune --dry-run", "the plan, nothing trained"),
    ],
    "verify": [
        ("dltrain verify runs/house/<id>", "retrain the run; exit 1 if it differs"),
        ("dltrain verify runs/house/<id> --tolerance 1e-4 --keep", "keep the rerun"),
    ],
    "compare": [
        ("dltrain compare runs/house/<a> runs/house/<b>", "recipe differences, metrics"),
        ("dltrain compare runs/house/* --format markdown --output compare.md", "for a PR"),
    ],
}


def examples_epilog(command: str) -> str:
    """The Rich-markup block of ``command``'s examples, for ``--help``'s end.

    Example:
        >>> examples_epilog("runs").splitlines()[0]
        '[bold]Examples[/]'
    """
    lines = ["[bold]Examples[/]"]
    lines += [f"  {line}   [dim]# {what}[/]" for line, what in EXAMPLES[command]]
    return "\n\n".join(lines)  # Typer's Rich help joins single newlines into one paragraph
