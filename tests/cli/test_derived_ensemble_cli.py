"""From the shell: a recipe with derived columns and an ensemble trains, evaluates, and its saved
model predicts the raw CSV rows exactly as evaluate scored them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.cli.eval_projects import write_houses
from tests.conftest import invoke


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
    (tmp_path / "dltrain.yaml").write_text(yaml.safe_dump(recipe))
    monkeypatch.chdir(tmp_path)
    for command in (["prepare"], ["train"]):
        code, _, err = invoke(*command)
        assert code == 0, err
    code, out, err = invoke("evaluate", "--json", "--split", "train")
    assert code == 0, err
    rmse = json.loads(out)["metrics"]["rmse"]

    # the training split's rows as a user holds them (the source's columns, no target)
    rows = pd.read_feather(next((tmp_path / "data" / "house").glob("train-*.arrow")))
    assert rows["rooms"].isna().any()  # derived values with a missing input are filled
    rows.drop(columns="__y__").to_csv(tmp_path / "rows.csv", index=False)
    code, _, err = invoke("predict", "-i", "rows.csv", "-o", "predictions.csv")
    assert code == 0, err
    predicted = pd.read_csv(tmp_path / "predictions.csv")["prediction"].to_numpy(float)
    assert np.isfinite(predicted).all()
    # predictions are written rounded to whole dollars
    assert np.sqrt(np.mean((predicted - rows["__y__"]) ** 2)) == pytest.approx(rmse, abs=1.0)
