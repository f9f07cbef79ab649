"""Averaged weights and one-cycle from the shell: train, then evaluate the saved average."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dltrain.backend import keras
from dltrain.models.saving import load_model
from tests.conftest import RecipeWriter, run_dltrain


@pytest.mark.slow  # two processes start TensorFlow
def test_swa_with_batch_norm_trains_and_evaluates_from_the_shell(
    tmp_path: Path, idx_folder: Path, write_recipe: RecipeWriter
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
    for command in (["prepare"], ["train"], ["evaluate", "--json"]):
        result = run_dltrain(*command, cwd=tmp_path)
        assert result.returncode == 0, (command, result.stderr)
    assert "accuracy" in json.loads(result.stdout)["metrics"]
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
