"""dltrain export: each format loaded by its own runtime gives the Keras model's predictions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dltrain.backend import keras, tf
from dltrain.errors import ExitCode, ExportMismatch
from dltrain.evaluation.export import ExportFormat, check_export
from tests.cli.eval_projects import copy_project, invoke, runs_of


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = copy_project(tmp_path)
    monkeypatch.chdir(path)
    return path


def raw_batch(project: Path) -> np.ndarray:
    """Raw uint8 pixels as the source had them (no scaling: the model does that itself)."""
    return np.load(project / "binary.npz")["x"][:32, ..., None]


def test_every_format_matches_keras_in_its_own_runtime(project: Path) -> None:
    code, out, err = invoke(
        "export", "-r", "bin.yaml", "-f", "saved_model", "-f", "tflite", "-f", "onnx", "--json"
    )
    assert code == 0, err
    assert "XNNPACK" not in err  # the TFLite runtime's start-up notice stays hidden
    exports = {e["format"]: e for e in json.loads(out)["exports"]}
    assert set(exports) == {"saved_model", "tflite", "onnx"}
    run = runs_of(project, "bin")[-1]
    x = raw_batch(project)
    expected = np.asarray(
        keras.models.load_model(run / "model.keras", compile=False).predict(x, verbose=0)
    )

    saved = tf.saved_model.load(str(run / "export" / "saved_model"))  # plain TF, no Keras
    served = saved.signatures["serving_default"](input=tf.constant(x))
    np.testing.assert_allclose(next(iter(served.values())).numpy(), expected, atol=1e-5)

    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(run / "export" / "model.tflite"))
    entry = interpreter.get_input_details()[0]
    assert entry["dtype"] == np.uint8  # raw pixels in, as the Keras model takes them
    interpreter.resize_tensor_input(entry["index"], list(x.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(entry["index"], x)
    interpreter.invoke()
    tflite = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(tflite, expected, atol=1e-5)

    import onnxruntime

    session = onnxruntime.InferenceSession(str(run / "export" / "model.onnx"))
    onnx = session.run(None, {session.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(onnx, expected, atol=1e-5)

    metadata = json.loads((run / "export" / "metadata.json").read_text())
    assert metadata["classes"] == ["ham", "spam"] and metadata["task"] == "binary"
    assert set(metadata["exports"]) == {"saved_model", "tflite", "onnx"}
    for entry in exports.values():
        assert entry["max_abs_diff"] < 1e-4 and entry["agreement"] == 1.0


def test_export_to_a_chosen_path(project: Path) -> None:
    code, _, err = invoke("export", "-f", "tflite", "-o", "ship/tiny.tflite")
    assert code == 0, err
    assert (project / "ship" / "tiny.tflite").read_bytes()[4:8] == b"TFL3"
    code, _, err = invoke("export", "-f", "tflite", "-f", "onnx", "-o", "ship/x")
    assert code == 2 and "one at a time" in err


def test_a_mismatching_export_is_refused() -> None:
    expected = np.array([[0.2, 0.8], [0.9, 0.1]])
    check_export(expected, expected + 1e-6, ExportFormat.TFLITE, classifier=True)
    with pytest.raises(ExportMismatch, match="not written") as caught:
        check_export(expected, expected[::-1], ExportFormat.ONNX, classifier=True)
    assert caught.value.exit_code == ExitCode.FAILED
