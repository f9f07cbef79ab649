"""Export a run's model as a TensorFlow SavedModel, a TFLite flatbuffer or an ONNX graph.

Every export is checked by its own runtime before it is put in place: the SavedModel is loaded
with plain ``tf.saved_model.load``, the TFLite model runs in the LiteRT interpreter, the ONNX
model in ONNX Runtime, each on a batch of raw inputs from the run's data, and its outputs must
match the Keras model's. An export that does not match is never written.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from dltrain.backend import _silenced_stderr, keras, tf
from dltrain.errors import DltrainError, ExitCode, UsageError
from dltrain.evaluation.run_model import RunModel, open_run
from dltrain.evaluation.threshold import read_threshold
from dltrain.runs import atomic_path, read_json, write_json_atomic

EXPORT_DIR = "export"
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


class ExportMismatch(DltrainError):
    """The exported model ran but does not give the Keras model's outputs."""

    kind = "export check failed"
    exit_code = ExitCode.FAILED


class ExportError(DltrainError):
    kind = "export error"


@dataclass(frozen=True)
class ExportResult:
    format: ExportFormat
    path: Path
    bytes: int
    checked_examples: int
    max_abs_diff: float
    agreement: float | None  # classifiers: share of examples with the same predicted class
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format.value,
            "path": str(self.path),
            "bytes": self.bytes,
            "checked_examples": self.checked_examples,
            "max_abs_diff": self.max_abs_diff,
            "agreement": self.agreement,
            "seconds": round(self.seconds, 3),
        }


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def sample_inputs(run: RunModel, model: keras.Model, size: int = SAMPLE_SIZE) -> np.ndarray:
    """Raw inputs to check an export with: the run's validation split, else seeded noise."""
    if run.data_folder is not None:
        try:
            from dltrain.data.store import open_store

            x, _ = open_store(run.data_folder).load_split("validation")
            if isinstance(x, np.ndarray) and len(x):
                return x[:size]
        except DltrainError:
            pass  # the data is gone: synthetic inputs still check the graph
    spec = model.inputs[0]
    shape = (size, *spec.shape[1:])
    rng = np.random.default_rng(0)
    dtype = np.dtype(spec.dtype)
    if np.issubdtype(dtype, np.integer):
        return rng.integers(0, 256, size=shape).astype(dtype)
    return rng.normal(size=shape).astype(dtype)


def _input_signature(model: keras.Model) -> list[Any]:
    if len(model.inputs) != 1:
        raise ExportError(
            f"The model takes {len(model.inputs)} inputs; dltrain exports single-input models "
            f"(images, windows, arrays) today. Use --format saved_model, which keeps any inputs."
        )
    spec = model.inputs[0]
    return [tf.TensorSpec((None, *spec.shape[1:]), spec.dtype, name="input")]


def _saved_model(model: keras.Model, path: Path) -> None:
    model.export(str(path), format="tf_saved_model", verbose=False)


def run_saved_model(path: Path, x: np.ndarray) -> np.ndarray:
    """Outputs of a SavedModel loaded with plain ``tf.saved_model.load`` (no Keras)."""
    loaded = tf.saved_model.load(str(path))
    return np.asarray(loaded.serve(tf.constant(x)))


def _tflite(model: keras.Model, path: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="dltrain-tflite-") as scratch:
        _saved_model(model, Path(scratch) / "saved_model")
        converter = tf.lite.TFLiteConverter.from_saved_model(str(Path(scratch) / "saved_model"))
        try:
            with _silenced_stderr():
                flatbuffer = converter.convert()
        except Exception as exc:  # the converter raises ConverterError and friends
            raise ExportError(
                f"TensorFlow Lite cannot convert this model ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''}). It uses an operation TFLite's "
                f"built-in kernels lack; export a SavedModel (--format saved_model) instead."
            ) from None
    path.write_bytes(flatbuffer)


def run_tflite(path: Path, x: np.ndarray) -> np.ndarray:
    """Outputs of a .tflite model run by the LiteRT interpreter (TensorFlow's as a fallback)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # pragma: no cover - ai-edge-litert is a dependency; TF's still works
        Interpreter = tf.lite.Interpreter  # noqa: N806
    with _silenced_stderr():  # the runtime announces its CPU delegate on fd 2
        interpreter = Interpreter(model_path=str(path))
        entry = interpreter.get_input_details()[0]
        interpreter.resize_tensor_input(entry["index"], list(x.shape))
        interpreter.allocate_tensors()
        interpreter.set_tensor(entry["index"], x.astype(entry["dtype"]))
        interpreter.invoke()
        return np.asarray(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]))


def _onnx(model: keras.Model, path: Path) -> None:
    try:
        import tf2onnx
    except ImportError:
        raise ExportError(
            "ONNX export needs tf2onnx, which is not installed. Install it with "
            "`pip install 'dltrain[onnx]'` (tf2onnx, onnx, onnxruntime), then export again."
        ) from None
    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    with _silenced_stderr():
        proto, _ = tf2onnx.convert.from_keras(model, input_signature=_input_signature(model))
    path.write_bytes(proto.SerializeToString())


def run_onnx(path: Path, x: np.ndarray) -> np.ndarray:
    """Outputs of an .onnx model run by ONNX Runtime."""
    try:
        import onnxruntime
    except ImportError:
        raise ExportError(
            "Checking an ONNX export needs onnxruntime: `pip install 'dltrain[onnx]'`."
        ) from None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.asarray(session.run(None, {name: x})[0])


WRITERS: dict[ExportFormat, Callable[[keras.Model, Path], None]] = {
    ExportFormat.SAVED_MODEL: _saved_model,
    ExportFormat.TFLITE: _tflite,
    ExportFormat.ONNX: _onnx,
}
RUNNERS: dict[ExportFormat, Callable[[Path, np.ndarray], np.ndarray]] = {
    ExportFormat.SAVED_MODEL: run_saved_model,
    ExportFormat.TFLITE: run_tflite,
    ExportFormat.ONNX: run_onnx,
}


def check_export(
    expected: np.ndarray, actual: np.ndarray, fmt: ExportFormat, classifier: bool
) -> tuple[float, float | None]:
    """Max absolute difference and class agreement; raises when outside float tolerance.

    Raises:
        ExportMismatch: the outputs differ beyond rtol 1e-3, atol 1e-4.
    """
    actual = actual.reshape(expected.shape)
    diff = float(np.max(np.abs(expected - actual))) if expected.size else 0.0
    agreement = None
    if classifier and expected.ndim == 2 and expected.shape[1] > 1:
        agreement = float(np.mean(expected.argmax(axis=1) == actual.argmax(axis=1)))
    if not np.allclose(actual, expected, rtol=RTOL, atol=ATOL):
        raise ExportMismatch(
            f"The {fmt.value} export gives outputs up to {diff:.3g} away from the Keras model's "
            f"on {len(expected)} raw inputs (allowed: rtol {RTOL:g}, atol {ATOL:g}). It was not "
            f"written. This is a converter problem; export another format, or report it with "
            f"`dltrain --debug export`."
        )
    return diff, agreement


def export_run(run_dir: Path, fmt: ExportFormat, output: Path | None = None) -> ExportResult:
    """Export the run's model in ``fmt``, check it against Keras, and put it in place.

    Args:
        run_dir: the run folder.
        fmt: saved_model, tflite or onnx.
        output: where to write; default ``<run>/export/saved_model/``, ``model.tflite`` or
            ``model.onnx``.

    Raises:
        RunError: no usable model.
        ExportError: the converter cannot convert the model, or is not installed.
        ExportMismatch: the export's outputs differ from the Keras model's (exit 1).
    """
    started = time.perf_counter()
    run = open_run(run_dir)
    target = output or run_dir / EXPORT_DIR / DEFAULT_NAMES[fmt]
    if target.resolve() == run_dir.resolve() or target.resolve() in run_dir.resolve().parents:
        raise UsageError(f"--output {target} would replace the run folder; pick a new path.")
    if target.exists() and target.is_dir() != (fmt == ExportFormat.SAVED_MODEL):
        raise UsageError(
            f"--output {target} exists and is a {'folder' if target.is_dir() else 'file'}; a "
            f"{fmt.value} export is a {'folder' if fmt == ExportFormat.SAVED_MODEL else 'file'}. "
            f"Pick another path."
        )
    model = run.load_keras()
    x = sample_inputs(run, model)
    expected = np.asarray(model.predict_on_batch(x))
    with atomic_path(target) as tmp:
        WRITERS[fmt](model, tmp)
        actual = RUNNERS[fmt](tmp, x)
        diff, agreement = check_export(expected, actual, fmt, run.is_classifier)
    result = ExportResult(
        format=fmt,
        path=target,
        bytes=_size(target),
        checked_examples=len(x),
        max_abs_diff=diff,
        agreement=agreement,
        seconds=time.perf_counter() - started,
    )
    _write_metadata(run, model, target.parent, result)
    return result


def _write_metadata(run: RunModel, model: keras.Model, folder: Path, result: ExportResult) -> None:
    """metadata.json beside the exports: what the model takes and returns, so a server need not
    read dltrain's run folder to turn outputs into class names."""
    path = folder / METADATA_FILE
    try:
        existing: dict[str, Any] = read_json(path) if path.is_file() else {}
    except (OSError, ValueError):
        existing = {}
    spec = model.inputs[0]
    threshold = read_threshold(run.run_dir)
    document = {
        "run": str(run.run_dir),
        "recipe": run.recipe_name,
        "task": run.task,
        "classes": run.classes,
        "targets": run.target_names,
        "input": {"shape": [None, *spec.shape[1:]], "dtype": str(spec.dtype)},
        "outputs": "class probabilities" if run.is_classifier else "values in the target's units",
        "threshold": threshold,
        "exports": {**existing.get("exports", {}), result.format.value: result.to_json()},
    }
    write_json_atomic(path, document)
