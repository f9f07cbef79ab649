"""`dltrain evaluate --format model-card` from the shell, on a tiny table with awkward column
names: the card on stdout is the run's MODEL_CARD.md, and it carries what the run recorded."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import invoke, run_dltrain


def _write_table(path: Path, rows: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    size = rng.uniform(20, 200, rows)
    kind = rng.choice(["flat", "house", "loft"], rows)
    label = np.where(size + rng.normal(0, 20, rows) > 110, "big", "small")
    lines = ["Sale Price/m2,type (code),label"]
    lines += [f"{s:.1f},{k},{y}" for s, k, y in zip(size, kind, label, strict=True)]
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.slow
def test_model_card_from_the_shell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_table(tmp_path / "homes.csv", 300, seed=3)
    recipe = {
        "name": "homes",
        "seed": 11,
        "data": {"source": "homes.csv", "target": "label"},
        "model": {"family": "mlp", "units": [8], "dropout": 0.0},
        "train": {"epochs": 2, "batch_size": 32},
    }
    (tmp_path / "dltrain.yaml").write_text(yaml.safe_dump(recipe))
    monkeypatch.chdir(tmp_path)
    for command in ("prepare", "train"):  # in this process; evaluate runs from the shell
        code, _, err = invoke(command)
        assert code == 0, err
    done = run_dltrain("evaluate", "--format", "model-card", "--bootstrap", "50", cwd=tmp_path)
    assert done.returncode == 0, done.stderr

    (run,) = (tmp_path / "runs" / "homes").iterdir()
    card = (run / "MODEL_CARD.md").read_text()
    assert done.stdout == card and "MODEL_CARD.md" in done.stderr
    manifest = json.loads((run / "manifest.json").read_text())
    info = json.loads((run / "run.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    assert f"run `{run.name}`" in card
    assert manifest["source"]["fingerprint"] in card
    assert "| `Sale Price/m2` | numeric | yes | `Sale_Price_m2` |" in card
    assert "`type_code`" in card
    assert f"| epochs run | {info['epochs_run']} |" in card
    assert f"{metrics['metrics']['accuracy']:.4f}" in card
    low, high = metrics["intervals"]["accuracy"]["low"], metrics["intervals"]["accuracy"]["high"]
    assert f"{low:.4f} – {high:.4f}" in card
    assert "## Baselines" in card and "the class prior" in card
    assert "## Where it is weakest" in card
