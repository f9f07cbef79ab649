"""dltrain export answers a batch of one row, and leaves random augmentation out of the graph:
a table with categories in TFLite (float, dynamic, int8), and a CNN that flips and rotates."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from dltrain.errors import ExportError, ExportMismatch
from dltrain.evaluation.export import ExportFormat, check_one_row
from dltrain.evaluation.formats import run_tflite
from dltrain.evaluation.run_model import open_run
from dltrain.models.blocks import has_training_only_layers
from tests.cli.eval_projects import copy_project, invoke, recipe, runs_of


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = copy_project(tmp_path)
    monkeypatch.chdir(path)
    return path


def validation_rows(run_dir: Path, size: int) -> dict[str, np.ndarray]:
    """The first validation rows of a table run, keyed as its model takes them."""
    from dltrain.data.store import open_store

    run = open_run(run_dir)
    assert run.data_folder is not None
    x, _ = open_store(run.data_folder).load_split("validation")
    return run.manifest.model_inputs({k: v[:size] for k, v in x.items()})  # type: ignore[no-any-return]


def test_a_table_with_categories_answers_one_row_in_every_tflite_kind(project: Path) -> None:
    run = runs_of(project, "house")[-1]
    batch = validation_rows(run, 8)
    row = {k: v[:1] for k, v in batch.items()}
    assert batch["district"].dtype == object  # a category column
    expected = open_run(run).load_keras().predict_on_batch(row)
    # int8 rounds the activations of a head that outputs dollars; its accuracy is not at stake
    for mode in (None, "dynamic", "int8"):
        flags = ["--quantize", mode, "--max-metric-drop", "10"] if mode else []
        code, out, err = invoke("export", "-r", "house.yaml", "-f", "tflite", *flags, "--json")
        assert code == 0, err
        (entry,) = json.loads(out)["exports"]
        answer = run_tflite(Path(entry["path"]), row)
        assert answer.shape == expected.shape == (1, 1)
        first = run_tflite(Path(entry["path"]), batch)[:1]
        np.testing.assert_allclose(answer, first, rtol=1e-5)  # alone as in a batch
        if mode is None:
            np.testing.assert_allclose(answer, expected, rtol=1e-3)
    code, out, err = invoke("export", "-r", "house.yaml", "-f", "saved_model", "--json")
    assert code == 0, err


def test_a_cnn_with_flips_and_rotations_exports_to_tflite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    from tests.conftest import synthetic_images

    images, labels = synthetic_images(120, num_classes=2, seed=3)
    np.savez(tmp_path / "images.npz", x=images, y=labels.astype(np.int64))
    document = recipe("aug", "images.npz")
    document["model"]["augmentation"] = {"flip": "horizontal", "rotation": 0.1}  # type: ignore[index]
    (tmp_path / "dltrain.yaml").write_text(yaml.safe_dump(document))
    for args in (["prepare"], ["train"]):
        code, _, err = invoke(*args)
        assert code == 0, err
    code, out, err = invoke("export", "-f", "tflite", "-f", "saved_model", "-f", "onnx", "--json")
    assert code == 0, err
    exports = {e["format"]: e for e in json.loads(out)["exports"]}
    assert set(exports) == {"tflite", "saved_model", "onnx"}
    for entry in exports.values():
        assert entry["max_abs_diff"] < 1e-4 and entry["agreement"] == 1.0
    run = runs_of(tmp_path, "aug")[-1]
    x = images[:5, ..., None]
    model = open_run(run).load_keras()
    assert has_training_only_layers(model)  # the flips and rotations the export leaves out
    expected = model.predict_on_batch(x)
    np.testing.assert_allclose(run_tflite(Path(exports["tflite"]["path"]), x), expected, atol=1e-5)
    np.testing.assert_allclose(
        run_tflite(Path(exports["tflite"]["path"]), x[:1]), expected[:1], atol=1e-5
    )


def test_a_runtime_that_fails_or_differs_on_one_row_is_refused() -> None:
    batch = {"a": np.arange(4, dtype=np.float32)}
    expected = np.array([[1.0], [2.0], [3.0], [4.0]])
    check_one_row(expected, lambda one: expected[: len(one["a"])], batch, ExportFormat.TFLITE)

    def fails(one: dict[str, np.ndarray]) -> np.ndarray:
        if len(one["a"]) == 1:
            raise ExportError("no runtime (RuntimeError: concatenation 1 != 2)")
        return expected

    with pytest.raises(ExportMismatch, match="not a batch of one row") as caught:
        check_one_row(expected, fails, batch, ExportFormat.TFLITE)  # type: ignore[arg-type]
    assert "It was not written" in caught.value.message
    with pytest.raises(ExportMismatch, match="answers"):
        check_one_row(expected, lambda one: expected[:1] + 1, batch, ExportFormat.SAVED_MODEL)
