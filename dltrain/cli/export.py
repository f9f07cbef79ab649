"""dltrain export: a run's model as SavedModel, TFLite or ONNX, each checked by its own runtime."""

from __future__ import annotations

import math
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from dltrain.cli.common import (
    JsonOption,
    RecipeOption,
    RunOption,
    SetOption,
    collect_overrides,
    from_workdir,
    print_wide,
    reported_errors,
    workdir,
)
from dltrain.console import make_console, write_json
from dltrain.errors import UsageError
from dltrain.runs import resolve_recipe_and_run

if TYPE_CHECKING:
    from dltrain.evaluation.quantize import QuantizationReport


class Format(StrEnum):  # mirrors evaluation.export.ExportFormat, which imports TensorFlow
    SAVED_MODEL = "saved_model"
    TFLITE = "tflite"
    ONNX = "onnx"


class Quantize(StrEnum):  # mirrors evaluation.quantize.QuantizeMode
    DYNAMIC = "dynamic"
    INT8 = "int8"


def export(
    recipe: RecipeOption = None,
    run: RunOption = None,
    formats: Annotated[
        list[Format] | None,
        typer.Option(
            "--format",
            "-f",
            help="saved_model, tflite or onnx (repeatable). Default: saved_model.",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Where to write (one format only). Default: <run>/export/saved_model/, "
            "model.tflite or model.onnx.",
            show_default=False,
        ),
    ] = None,
    quantize: Annotated[
        Quantize | None,
        typer.Option(
            "--quantize",
            help="TFLite only: dynamic (int8 weights) or int8 (weights and activations, "
            "calibrated on 200 training examples). Checked by accuracy or RMSE on the "
            "validation split against the float model. Written as model-<mode>.tflite.",
            show_default=False,
        ),
    ] = None,
    max_metric_drop: Annotated[
        float | None,
        typer.Option(
            "--max-metric-drop",
            help="With --quantize: the largest drop allowed, else exit 1 and nothing written. "
            "Accuracy points lost for classes (default 0.01), RMSE's relative rise for numbers "
            "(default 0.02 = 2%).",
            show_default=False,
        ),
    ] = None,
    sets: SetOption = None,
    json_: JsonOption = False,
) -> None:
    """Export a run's model; each export must match the Keras model's outputs to be written."""
    console = make_console()
    with reported_errors(console):
        chosen = list(dict.fromkeys(formats or [Format.SAVED_MODEL]))
        if output is not None and len(chosen) > 1:
            raise UsageError(
                f"--output names one path but {len(chosen)} formats were asked for; export them "
                f"one at a time, or drop --output to use <run>/export/."
            )
        _check_quantize(chosen, quantize, max_metric_drop)
        _, run_dir = resolve_recipe_and_run(recipe, run, workdir(), collect_overrides(sets))
        target = None if output is None else from_workdir(output)
        results = []
        for fmt in chosen:
            with console.status(f"Exporting {run_dir.name} as {fmt.value} and checking it …"):
                from dltrain.evaluation.export import ExportFormat, export_run
                from dltrain.evaluation.quantize import QuantizeMode

                mode = None if quantize is None else QuantizeMode(quantize.value)
                exported = export_run(
                    run_dir, ExportFormat(fmt.value), target, mode, max_metric_drop
                )
                results.append(exported)
        table = Table(title=f"Exports of {run_dir}", title_justify="left")
        for name in ("format", "path", "size", "checked on", "max |diff|", "same class"):
            table.add_column(name, justify="left" if name in ("format", "path") else "right")
        for r in results:
            table.add_row(
                r.format.value,
                str(r.path.relative_to(run_dir)) if r.path.is_relative_to(run_dir) else str(r.path),
                f"{r.bytes / 1e6:.2f} MB",
                f"{r.checked_examples} inputs",
                f"{r.max_abs_diff:.2e}",
                "-" if r.agreement is None else f"{r.agreement:.1%}",
            )
        print_wide(console, table)
        for r in results:
            if r.quantization is not None:
                console.print(_quantization_line(r.quantization), highlight=False)
        if json_:
            write_json({"run": str(run_dir), "exports": [r.to_json() for r in results]})


def _check_quantize(
    formats: list[Format], quantize: Quantize | None, max_metric_drop: float | None
) -> None:
    """Refuse --quantize beside a format it does not apply to, and a tolerance without it.

    Raises:
        UsageError: naming the flags and the fix.
    """
    if quantize is None:
        if max_metric_drop is not None:
            raise UsageError(
                "--max-metric-drop is the tolerance of a quantised export and was given without "
                "--quantize. Add `--format tflite --quantize dynamic` (or int8), or drop "
                "--max-metric-drop."
            )
        return
    others = [f.value for f in formats if f != Format.TFLITE]
    if others:
        raise UsageError(
            f"--quantize {quantize.value} applies to TFLite exports only, and "
            f"{', '.join(others)} was asked for. Export `--format tflite --quantize "
            f"{quantize.value}`, and other formats in a second command without --quantize."
        )
    if max_metric_drop is not None and not math.isfinite(max_metric_drop):
        raise UsageError(
            f"--max-metric-drop must be a finite number (accuracy points, or RMSE's relative "
            f"rise: 0.01 is 1 point or 1%). Received: {max_metric_drop}."
        )


def _quantization_line(report: QuantizationReport) -> str:
    """One sentence: what quantising saved and what it cost."""
    change = report.change
    size = (
        f"{report.mode.value}: {report.bytes / 1e3:,.1f} KB, {report.size_ratio:.0%} of the "
        f"float TFLite model's {report.float_bytes / 1e3:,.1f} KB"
    )
    if change.metric == "accuracy":
        cost = (
            f"accuracy {change.float_value:.4f} → {change.quantized_value:.4f} "
            f"({change.drop * 100:.2f} points lost, at most {change.max_drop * 100:.2f} allowed)"
        )
    else:
        cost = (
            f"RMSE {change.float_value:.4g} → {change.quantized_value:.4g} "
            f"({change.drop:+.2%}, at most {change.max_drop:+.2%} allowed), MAE "
            f"{change.float_mae:.4g} → {change.quantized_mae:.4g}"
        )
    kernels = ""
    if report.mode.value == "int8":
        kernels = "; every op int8" if report.fully_integer else "; some ops on float kernels"
    return f"{size}; {cost} on {change.examples} validation examples{kernels}."
