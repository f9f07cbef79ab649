"""Each export format: how a Keras model is written as it (SavedModel, TFLite, ONNX) and how
the written file is run back, in its own runtime and without Keras, so that export can check it."""

from __future__ import annotations

import logging
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from dltrain.backend import _silenced_stderr, keras, tf
from dltrain.errors import ExportError

Inputs = np.ndarray | dict[str, np.ndarray]  # one array, or one per input column (tables)


def _first(x: Inputs, size: int) -> Inputs:
    return {k: v[:size] for k, v in x.items()} if isinstance(x, dict) else x[:size]


def _count(x: Inputs) -> int:
    return len(next(iter(x.values()))) if isinstance(x, dict) else len(x)


def _tensors(x: Inputs) -> Any:
    if isinstance(x, dict):
        return {k: tf.constant(v) for k, v in x.items()}
    return tf.constant(x)


def _saved_model(model: keras.Model, path: Path) -> None:
    model.export(str(path), format="tf_saved_model", verbose=False)


def run_saved_model(path: Path, x: Inputs) -> np.ndarray:
    """Outputs of a SavedModel loaded with plain ``tf.saved_model.load`` (no Keras)."""
    loaded = tf.saved_model.load(str(path))
    return np.asarray(loaded.serve(_tensors(x)))


ConverterSetup = Callable[[Any], None]  # configures a tf.lite.TFLiteConverter


def op_sets(*sets: Any) -> ConverterSetup:
    """A converter setup that allows these operation sets (tf.lite.OpsSet members)."""

    def setup(converter: Any) -> None:
        converter.target_spec.supported_ops = list(sets)

    return setup


def float_setups() -> list[ConverterSetup]:
    """TFLite's built-in kernels; for a model that needs more (the string lookups of a table's
    categories), TensorFlow's own kernels too ("select TF ops"), which the LiteRT runtime runs
    with its Flex delegate."""
    builtins, select = tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS
    return [op_sets(builtins), op_sets(builtins, select)]


def tflite_flatbuffer(
    model: keras.Model, setups: list[ConverterSetup] | None = None
) -> tuple[bytes, int]:
    """The model as a TFLite flatbuffer, converted with the first setup that succeeds.

    Returns:
        The flatbuffer, and the index of the setup that made it.

    Raises:
        ExportError: no setup converts the model (naming the converter's reason).
    """
    setups = setups or float_setups()
    with tempfile.TemporaryDirectory(prefix="dltrain-tflite-") as scratch:
        folder = str(Path(scratch) / "saved_model")
        _saved_model(model, Path(folder))
        failure: Exception | None = None
        for index, setup in enumerate(setups):
            converter = tf.lite.TFLiteConverter.from_saved_model(folder)
            setup(converter)
            try:
                with _silenced_stderr():
                    return bytes(converter.convert()), index
            except Exception as exc:  # the converter raises ConverterError and friends
                failure = exc
    text = str(failure).strip().splitlines()[0] if str(failure).strip() else ""
    raise ExportError(
        f"TensorFlow Lite cannot convert this model ({type(failure).__name__}: {text}). "
        f"It uses an operation TFLite lacks; export a SavedModel (--format saved_model)."
    )


def _tflite(model: keras.Model, path: Path) -> None:
    path.write_bytes(tflite_flatbuffer(model)[0])


def run_tflite(path: Path, x: Inputs) -> np.ndarray:
    """Outputs of a .tflite model through its serving signature, in the LiteRT interpreter
    (TensorFlow's own when the model needs select TF ops, whose kernels it links)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # pragma: no cover - ai-edge-litert is a dependency
        Interpreter = tf.lite.Interpreter  # noqa: N806
    with _silenced_stderr():  # the runtimes announce their CPU delegate on fd 2
        try:
            return _run_signature(Interpreter(model_path=str(path)), x)
        except (RuntimeError, ValueError):
            pass
        try:
            return _run_signature(tf.lite.Interpreter(model_path=str(path)), x)
        except (RuntimeError, ValueError) as exc:
            needs = re.findall(r"Flex\w+", str(exc))
            raise ExportError(
                f"The TFLite model needs TensorFlow's own kernels ({', '.join(needs) or exc}): "
                f"operations TFLite has no builtin for, such as text standardisation or a "
                f"recurrent layer's loop (TensorList), which no TFLite runtime here links, so "
                f"dltrain cannot check it and did not write it. Export a SavedModel or ONNX "
                f"(--format saved_model | onnx) instead."
            ) from None


def _run_signature(interpreter: Any, x: Inputs) -> np.ndarray:
    runner = interpreter.get_signature_runner()
    names = list(runner.get_input_details())
    if isinstance(x, dict):
        # tf.function parameters cannot hold '-': 'marital-status' is served as 'marital_status'
        by_name = {re.sub(r"[^A-Za-z0-9_]", "_", k): v for k, v in x.items()}
        feeds = {n: x[n] if n in x else by_name[re.sub(r"[^A-Za-z0-9_]", "_", n)] for n in names}
    else:
        feeds = {names[0]: x}
    outputs = runner(**{k: _tflite_value(v) for k, v in feeds.items()})
    return np.asarray(next(iter(outputs.values())))


def _tflite_value(value: np.ndarray) -> np.ndarray:
    # TFLite takes strings as bytes
    if value.dtype == object:
        return np.asarray([str(v).encode() for v in value.ravel()], dtype=object).reshape(
            value.shape
        )
    return value


def _onnx(model: keras.Model, path: Path) -> None:
    try:
        import tf2onnx
    except ImportError:
        raise ExportError(
            "ONNX export needs tf2onnx, which is not installed. Install it with "
            "`pip install 'dltrain[onnx]'` (tf2onnx, onnx, onnxruntime), then export again."
        ) from None
    if len(model.inputs) != 1:
        raise ExportError(
            f"The model takes {len(model.inputs)} named inputs (a table's columns); dltrain's "
            f"ONNX export covers single-input models (images, windows). Export a SavedModel or "
            f"TFLite model instead."
        )
    spec = model.inputs[0]
    signature = [tf.TensorSpec((None, *spec.shape[1:]), spec.dtype, name="input")]
    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    try:
        with _silenced_stderr():
            proto, _ = tf2onnx.convert.from_keras(model, input_signature=signature)
    except Exception as exc:  # tf2onnx raises plain Exceptions for unsupported ops
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ExportError(
            f"tf2onnx cannot convert this model ({type(exc).__name__}: {text}). Export a "
            f"SavedModel or TFLite model instead."
        ) from None
    path.write_bytes(proto.SerializeToString())


def run_onnx(path: Path, x: Inputs) -> np.ndarray:
    """Outputs of an .onnx model run by ONNX Runtime."""
    try:
        import onnxruntime
    except ImportError:
        raise ExportError(
            "Checking an ONNX export needs onnxruntime: `pip install 'dltrain[onnx]'`."
        ) from None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    array = next(iter(x.values())) if isinstance(x, dict) else x
    return np.asarray(session.run(None, {session.get_inputs()[0].name: array})[0])
