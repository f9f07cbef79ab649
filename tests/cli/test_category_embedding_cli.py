"""From the shell: a wide category column is embedded, and the trained model still takes raw
strings in predict and in its SavedModel export, an unseen value included."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.conftest import invoke


@pytest.mark.slow
def test_an_embedded_column_trains_exports_and_predicts_raw_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(0)
    num = 400
    town = rng.integers(0, 70, num)  # 70 values: auto embeds it
    frame = pd.DataFrame(
        {
            "rooms": rng.integers(1, 9, num).astype(float),
            "town": [f"town{t:02d}" for t in town],
            "price": rng.normal(0, 3, num) + 10 * rng.integers(1, 9, num) + town,
        }
    )
    frame.to_csv(tmp_path / "homes.csv", index=False)
    recipe = {
        "name": "homes",
        "data": {"source": "homes.csv", "target": "price"},
        "model": {"family": "mlp", "units": [16]},
        "train": {"epochs": 1, "batch_size": 32},
    }
    (tmp_path / "dltrain.yaml").write_text(yaml.safe_dump(recipe))
    monkeypatch.chdir(tmp_path)
    for command in (["prepare"], ["train"]):
        code, _, err = invoke(*command)
        assert code == 0, err
    manifest = json.loads((tmp_path / "data" / "homes" / "manifest.json").read_text())
    (town_entry,) = manifest["preprocessing"]["categorical"]
    assert town_entry["encoding"] == "embedding" and town_entry["embedding_dim"] > 1

    code, out, err = invoke("export", "--format", "saved_model", "--json")
    assert code == 0, err
    (export,) = json.loads(out)["exports"]
    assert export["checked_examples"] > 0 and export["max_abs_diff"] < 1e-4

    frame.drop(columns="price").head(3).assign(town=["town01", "nowhere", "town02"]).to_csv(
        tmp_path / "new.csv", index=False
    )
    code, _, err = invoke("predict", "-i", "new.csv", "-o", "scored.csv")
    assert code == 0, err
    assert np.isfinite(pd.read_csv(tmp_path / "scored.csv")["prediction"]).all()
    assert "unseen categories" in err and "1 (33.3%)" in err
