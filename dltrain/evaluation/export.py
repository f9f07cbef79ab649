"""Export a run's model as a TensorFlow SavedModel, a TFLite flatbuffer or an ONNX graph.

Every export is checked by its own runtime before it is put in place: the SavedModel is loaded
with plain ``tf.saved_model.load``, the TFLite model runs in the LiteRT interpreter, the ONNX
model in ONNX Runtime, each on a batch of raw inputs from the run's data, and its outputs must
match the Keras model's, on that batch and on its first row alone (a batch of one). An export
that does not match is never written. Layers that act only in training (random image
augmentation) are left out of the exported graph.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dltrain.atomic import atomic_path, read_json, remove_stale_partials, write_json_atomic
from dltrain.backend import keras
from dltrain.data.readers.formats import enclosing_run
from dltrain.errors import DltrainError, ExportError, ExportMismatch, UsageError
from dltrain.evaluation.formats import (
    Inputs,
    _count,
    _first,
    _onnx,
    _saved_model,
    _tflite,
    run_onnx,
    run_saved_model,
    run_tflite,
)
from dltrain.evaluation.run_model import RunModel, open_run
from dltrain.evaluation.threshold import read_stored_threshold
from dltrain.manifest import TableFeatures
from dltrain.models.blocks import float32_copy, inference_copy
from dltrain.runs import RunFolder

if TYPE_CHECKING:
    from dltrain.evaluation.quantize import QuantizationReport, QuantizeMode

METADATA_FILE = "metadata.json"
SAMPLE_SIZE = 64
RTOL, ATOL = (
    1e-3,
    1e-4,
)  # float32 kernels differ between runtimes by ~1e-6; a wrong graph by far more


class ExportFormat(StrEnum):
    SAVED_MODEL = "saved_model"
    TFLITE = "tflite"
    ONNX = "onnx"


DEFAULT_NAMES = {
    ExportFormat.SAVED_MODEL: "saved_model",
    ExportFormat.TFLITE: "model.tflite",
    ExportFormat.ONNX: "model.onnx",
}


@dataclass(frozen=True)
class ExportResult:
    format: ExportFormat
    path: Path
    bytes: int
    checked_examples: int
    max_abs_diff: float
    agreement: float | None  # classifiers: share of examples with the same predicted class
    seconds: float
    quantization: QuantizationReport | None = None  # --quantize: size and metric change

    @property
    def key(self) -> str:
        """Its name in metadata.json's ``exports``: the format, and the quantisation if any."""
        mode = self.quantization.mode.value if self.quantization else None
        return f"{self.format.value}-{mode}" if mode else self.format.value

    def to_json(self) -> dict[str, object]:
        """The export as ``export --json`` and metadata.json's ``exports`` hold it."""
        return {
            "format": self.format.value,
            "path": str(self.path),
            "bytes": self.bytes,
            "checked_examples": self.checked_examples,
            "max_abs_diff": self.max_abs_diff,
            "agreement": self.agreement,
            "seconds": round(self.seconds, 3),
            "quantization": self.quantization.to_json() if self.quantization else None,
        }


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def sample_inputs(run: RunModel, model: keras.Model, size: int = SAMPLE_SIZE) -> Inputs:
    """Raw inputs to check an export with: the run's validation split, else seeded noise."""
    if run.data_folder is not None:
        try:
            from dltrain.data.store import open_store
            from dltrain.data.streaming import head_rows

            # the split's first shards only: a large split is not read whole for a sample
            x, _ = head_rows(open_store(run.data_folder), "validation", size)
            if _count(x):
                return run.manifest.model_inputs(_first(x, size))
        except DltrainError:
            pass  # the data is gone: synthetic inputs still check the graph
    rng = np.random.default_rng(0)
    made: dict[str, np.ndarray] = {}
    for spec in model.inputs:
        shape = (size, *spec.shape[1:])
        dtype = str(spec.dtype)
        if dtype == "string":
            made[spec.name] = np.full(shape, "", dtype=object)
        elif np.issubdtype(np.dtype(dtype), np.integer):
            made[spec.name] = rng.integers(0, 256, size=shape).astype(dtype)
        else:
            made[spec.name] = rng.normal(size=shape).astype(dtype)
    return made if len(made) > 1 or isinstance(model.input, dict) else next(iter(made.values()))


WRITERS: dict[ExportFormat, Callable[[keras.Model, Path], None]] = {
    ExportFormat.SAVED_MODEL: _saved_model,
    ExportFormat.TFLITE: _tflite,
    ExportFormat.ONNX: _onnx,
}
RUNNERS: dict[ExportFormat, Callable[[Path, Inputs], np.ndarray]] = {
    ExportFormat.SAVED_MODEL: run_saved_model,
    ExportFormat.TFLITE: run_tflite,
    ExportFormat.ONNX: run_onnx,
}


def _difference(
    expected: np.ndarray, actual: np.ndarray, classifier: bool
) -> tuple[float, float | None]:
    """Max absolute difference of two models' outputs, and for classifiers the share of
    examples given the same class."""
    actual = actual.reshape(expected.shape)
    diff = float(np.max(np.abs(expected - actual))) if expected.size else 0.0
    agreement = None
    if classifier and expected.ndim == 2 and expected.shape[1] > 1:
        agreement = float(np.mean(expected.argmax(axis=1) == actual.argmax(axis=1)))
    return diff, agreement


def check_export(
    expected: np.ndarray, actual: np.ndarray, fmt: ExportFormat, classifier: bool
) -> tuple[float, float | None]:
    """Max absolute difference and class agreement; raises when outside float tolerance.

    Raises:
        ExportMismatch: the outputs differ beyond rtol 1e-3, atol 1e-4.
    """
    diff, agreement = _difference(expected, actual, classifier)
    if not np.allclose(actual.reshape(expected.shape), expected, rtol=RTOL, atol=ATOL):
        raise ExportMismatch(
            f"The {fmt.value} export gives outputs up to {diff:.3g} away from the Keras model's "
            f"on {len(expected)} raw inputs (allowed: rtol {RTOL:g}, atol {ATOL:g}). It was not "
            f"written. This is a converter problem; export another format, or report it with "
            f"`dltrain --debug export`."
        )
    return diff, agreement


def check_one_row(
    expected: np.ndarray, run_one: Callable[[Inputs], np.ndarray], x: Inputs, fmt: ExportFormat
) -> None:
    """Run the export on the sample's first row alone: it must answer as it did for that row in
    the batch (a server runs one request at a time, and a graph can break on a batch of one).

    Raises:
        ExportMismatch: the one-row answer differs from the batch's first row, or the runtime
            fails on a batch of one row.
    """
    try:
        actual = np.asarray(run_one(_first(x, 1)))
    except Exception as exc:  # each runtime raises its own kind; any is the export's fault
        cause = exc.__context__ if isinstance(exc, ExportError) and exc.__context__ else exc
        text = str(cause).strip().splitlines()
        reason = f"fails on it ({type(cause).__name__}: {text[0] if text else ''})"
    else:
        if actual.size == expected[:1].size and np.allclose(
            actual.reshape(expected[:1].shape), expected[:1], rtol=RTOL, atol=ATOL
        ):
            return
        reason = f"answers {actual.ravel()[:4]} where the batch gave {expected[:1].ravel()[:4]}"
    raise ExportMismatch(
        f"The {fmt.value} export answers a batch of several rows but not a batch of one row: it "
        f"{reason}. It was not written. If the run was trained by an older dltrain (whose table "
        f"encoders had this fault), train it again and export the new run; otherwise report it "
        f"with `dltrain --debug export`."
    )


def export_run(
    run_dir: Path,
    fmt: ExportFormat,
    output: Path | None = None,
    quantize: QuantizeMode | None = None,
    max_metric_drop: float | None = None,
) -> ExportResult:
    """Export the run's model in ``fmt``, check it against Keras, and put it in place.

    Args:
        run_dir: the run folder.
        fmt: saved_model, tflite or onnx.
        output: where to write; default ``<run>/export/saved_model/``, ``model.tflite`` (or
            ``model-dynamic.tflite``, ``model-int8.tflite`` quantised) or ``model.onnx``.
        quantize: TFLite only: dynamic-range or full-integer quantisation (``quantize.py``),
            checked by its deciding metric on the validation split instead of output by output.
        max_metric_drop: the metric drop a quantised export may have; None: the default.

    Raises:
        RunError: no usable model.
        UsageError: --quantize with a format other than tflite, or a bad --output.
        ExportError: the converter cannot convert the model, or is not installed.
        ExportMismatch: the export's outputs differ from the Keras model's, or the quantised
            model's metric dropped beyond the tolerance (exit 1).
    """
    started = time.perf_counter()
    if quantize is not None and fmt != ExportFormat.TFLITE:
        raise UsageError(
            f"--quantize {quantize.value} applies to TFLite exports only, and {fmt.value} was "
            f"asked for. Export `--format tflite --quantize {quantize.value}`, and other formats "
            f"in a second command without --quantize."
        )
    target = _target(run_dir, fmt, output, quantize)
    run = open_run(run_dir)
    logging.getLogger("absl").setLevel(logging.ERROR)  # renamed-parameter notices, not news
    # what is exported: the model less its random augmentation, which acts only in training and
    # whose random ops TFLite lacks; the check compares it with the model as trained. A model
    # trained in bfloat16 is exported in float32 (``float32_copy``), and checked against that.
    model = float32_copy(run.load_keras())
    x = sample_inputs(run, model)
    expected = np.asarray(model.predict_on_batch(x))
    inference = inference_copy(model)
    if fmt == ExportFormat.ONNX and len(model.inputs) != 1:
        _onnx(model, target)  # refuses with the reason, before anything is written
    # An export killed mid-write left its temporary beside the target: in the run's export/
    # every leftover is export's; in a folder of the user's, only this target's.
    in_run = target.parent.resolve() == RunFolder(run_dir).export.resolve()
    own = None if in_run else [target.name, METADATA_FILE]
    remove_stale_partials(target.parent, own)
    report = None
    with atomic_path(target) as tmp:
        if quantize is None:
            WRITERS[fmt](inference, tmp)
            diff, agreement = check_export(expected, RUNNERS[fmt](tmp, x), fmt, run.is_classifier)
            check_one_row(expected, lambda one: RUNNERS[fmt](tmp, one), x, fmt)
        else:
            from dltrain.evaluation.quantize import quantize_tflite

            report = quantize_tflite(run, inference, quantize, tmp, max_metric_drop)
            batch = run_tflite(tmp, x)
            diff, agreement = _difference(expected, batch, run.is_classifier)
            check_one_row(batch, lambda one: run_tflite(tmp, one), x, fmt)
    result = ExportResult(
        format=fmt,
        path=target,
        bytes=_size(target),
        checked_examples=_count(x),
        max_abs_diff=diff,
        agreement=agreement,
        seconds=time.perf_counter() - started,
        quantization=report,
    )
    _write_metadata(run, model, target.parent, result)
    return result


def _target(
    run_dir: Path, fmt: ExportFormat, output: Path | None, quantize: QuantizeMode | None
) -> Path:
    """Where the export goes: --output, checked, or its default name in the run's export/.

    Raises:
        UsageError: --output names another format, the run folder, or a file for a folder.
    """
    if output is not None:
        _check_output(output, fmt)
    default = DEFAULT_NAMES[fmt] if quantize is None else f"model-{quantize.value}.tflite"
    target = output or RunFolder(run_dir).export / default
    if target.resolve() == run_dir.resolve() or target.resolve() in run_dir.resolve().parents:
        raise UsageError(f"--output {target} would replace the run folder; pick a new path.")
    if target.exists() and target.is_dir() != (fmt == ExportFormat.SAVED_MODEL):
        raise UsageError(
            f"--output {target} exists and is a {'folder' if target.is_dir() else 'file'}; a "
            f"{fmt.value} export is a {'folder' if fmt == ExportFormat.SAVED_MODEL else 'file'}. "
            f"Pick another path."
        )
    return target


SUFFIXES = {ExportFormat.TFLITE: ".tflite", ExportFormat.ONNX: ".onnx"}


def _check_output(output: Path, fmt: ExportFormat) -> None:
    """Refuse an --output named for another format, or one that would replace a file or folder
    of a run folder (its model, its checkpoints) rather than an earlier export.

    Raises:
        UsageError: naming the path and the fix.
    """
    suffix = SUFFIXES.get(fmt)
    if suffix is not None and output.suffix.lower() != suffix:
        raise UsageError(
            f"--output {output} has the suffix {output.suffix or '(none)'!r}, but a {fmt.value} "
            f"export is a {suffix} file. Name it so, such as model{suffix}, so that nothing "
            f"reads it as another format."
        )
    run = enclosing_run(output)
    if run is not None and output.exists():
        exports = RunFolder(run).export.resolve()
        if not output.resolve().is_relative_to(exports):
            raise UsageError(
                f"--output {output} is part of run folder {run}, which dltrain keeps as the "
                f"run's record; export does not write over it. Pick a new path, or leave "
                f"--output out to write into {exports}."
            )


def _input_names(run: RunModel) -> dict[str, str] | None:
    """A table's column → model input names (dltrain/input_names.py); None for other data."""
    features = run.manifest.features
    return features.input_names if isinstance(features, TableFeatures) else None


def _write_metadata(run: RunModel, model: keras.Model, folder: Path, result: ExportResult) -> None:
    """metadata.json beside the exports: what the model takes and returns, so a server need not
    read dltrain's run folder to turn outputs into class names."""
    path = folder / METADATA_FILE
    try:
        existing: dict[str, Any] = read_json(path) if path.is_file() else {}
    except (OSError, ValueError):
        existing = {}
    stored = read_stored_threshold(run.run_dir)
    document = {
        "run": str(run.run_dir),
        "recipe": run.recipe_name,
        "task": run.task,
        "classes": run.classes,
        "targets": run.target_names,
        "inputs": [
            {"name": spec.name, "shape": [None, *spec.shape[1:]], "dtype": str(spec.dtype)}
            for spec in model.inputs
        ],
        # a table's column names as the source spells them → the inputs' names above
        "input_names": _input_names(run),
        "outputs": "class probabilities" if run.is_classifier else "values in the target's units",
        "threshold": stored.to_json() if stored is not None else None,
        "exports": {**existing.get("exports", {}), result.key: result.to_json()},
    }
    write_json_atomic(path, document)
