"""From the shell: a recipe with derived columns and an ensemble trains, evaluates, and its saved
model predicts the raw CSV rows exactly as evaluate scored them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.cli.eval_projects import train_and_predict_training_rows, write_houses


@pytest.mark.slow
def test_derived_columns_and_an_ensemble_from_raw_rows_to_predictions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_houses(tmp_path / "houses.csv", 300, seed=4)
    recipe = {
        "name": "house",
        "seed": 3,
        "data": {
            "source": "houses.csv",
            "target": "price",
            "columns": {"house_id": {"type": "identifier"}, "per_room": {"scaling": "log"}},
            "derived": {"per_room": "area / rooms", "both": "(rooms + 1) * area"},
        },
        "model": {"family": "mlp", "units": [16], "dropout": 0.0, "ensemble": 3},
        "train": {"epochs": 3, "optimizer": {"name": "adam", "learning_rate": 0.05}},
    }
    monkeypatch.chdir(tmp_path)
    scored = train_and_predict_training_rows(tmp_path, recipe)
    # the training split's rows as a user holds them (the source's columns, no target)
    assert scored.rows["rooms"].isna().any()  # derived values with a missing input are filled
    assert np.isfinite(scored.predicted).all()
    # predictions are written rounded to whole dollars
    error = scored.predicted - scored.rows["__y__"].to_numpy(float)
    assert np.sqrt(np.mean(error**2)) == pytest.approx(scored.rmse, abs=1.0)
