"""Averaged weights and one-cycle from the shell: train, then evaluate the saved average."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dltrain.backend import keras
from dltrain.models.saving import load_model
from tests.conftest import RecipeWriter, invoke, run_dltrain


@pytest.mark.slow  # train starts TensorFlow in a process of its own
def test_swa_with_batch_norm_trains_and_evaluates_from_the_shell(
    tmp_path: Path, idx_folder: Path, write_recipe: RecipeWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_recipe(
        idx_folder,
        model={"batch_norm": True},
        train={
            "epochs": 3,
            "tensorboard": False,
            "swa": {"enabled": True, "start_epoch": 2},
            "lr_schedule": {"name": "one_cycle"},
            "early_stopping": {"enabled": False},
        },
    )
    monkeypatch.chdir(tmp_path)
    assert invoke("prepare")[0] == 0
    trained = run_dltrain("train", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    code, out, err = invoke("evaluate", "--json")  # the saved average, in this process
    assert code == 0, err
    assert "accuracy" in json.loads(out)["metrics"]
    (run,) = (tmp_path / "runs" / "tiny").iterdir()
    assert json.loads((run / "run.json").read_text())["status"] == "completed"

    def moving_means(path: Path) -> list[np.ndarray]:
        model = load_model(path, compile=False)
        return [
            np.array(layer.moving_mean)
            for layer in model._flatten_layers()
            if isinstance(layer, keras.layers.BatchNormalization)
        ]

    # the saved average has batch-norm statistics of its own; the last checkpoint (the same
    # average) still has the training run's
    (checkpoint,) = (run / "checkpoints").glob("epoch-*.keras")
    saved, trained = moving_means(run / "model.keras"), moving_means(checkpoint)
    assert saved and not all(np.allclose(a, b) for a, b in zip(saved, trained, strict=True))
