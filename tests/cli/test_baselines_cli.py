"""Baselines from the shell: prepare → train → evaluate --json (in its own process) on a tiny
table, with the class prior and gradient boosting beside the model, gates that name them, and
their exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import invoke, run_dltrain
from tests.evaluation.test_gbm_baseline import write_table

pytestmark = pytest.mark.slow


def test_prepare_train_evaluate_with_baselines_and_gates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_table(tmp_path / "t.csv", 400, seed=0)
    recipe = {
        "name": "t",
        "seed": 3,
        "data": {
            "source": "t.csv",
            "target": "label",
            "columns": {"id": {"type": "identifier"}},
            "split": {"validation": 0.2, "test": 0.2},
        },
        "model": {"family": "mlp", "units": [16], "dropout": 0.0},
        "train": {"epochs": 2, "batch_size": 16, "optimizer": {"learning_rate": 0.05}},
    }
    (tmp_path / "dltrain.yaml").write_text(yaml.safe_dump(recipe))
    monkeypatch.chdir(tmp_path)
    assert invoke("prepare")[0] == 0  # prepare and train in this process
    code, out, err = invoke("train", "--json")
    assert code == 0, err
    assert isinstance(json.loads(out)["warnings"], list)

    gate = "accuracy>=baseline.prior.accuracy"
    done = run_dltrain("evaluate", "--json", "--no-plots", "--require", gate, cwd=tmp_path)
    document = json.loads(done.stdout)
    assert document["schema_version"] == 3
    baselines = document["baselines"]
    assert set(baselines) == {"prior", "gbm"}
    assert set(baselines["prior"]) == set(document["metrics"])
    test_labels = [c["support"] for c in document["per_class"]]
    assert baselines["prior"]["accuracy"] in [n / sum(test_labels) for n in test_labels]
    assert baselines["gbm"]["accuracy"] > 0.8  # the rule is in the columns
    assert any("cached in" in note for note in document["baseline_notes"])
    assert (tmp_path / "data" / "t" / "baseline-gbm.pickle").is_file()
    model, prior = document["metrics"]["accuracy"], baselines["prior"]["accuracy"]
    assert document["gates"][0]["bound"] == prior
    assert done.returncode == (0 if model >= prior else 1), done.stderr
    assert model >= prior, "two epochs on a separable table should beat the class prior"
    assert "prior" in done.stderr and "gbm" in done.stderr  # the table's columns

    # the opposite gate fails (exit 1), and the cached fit is reused (in-process: quicker)
    gate = "accuracy<baseline.prior.accuracy"
    code, out, err = invoke("evaluate", "--json", "--no-plots", "--require", gate)
    assert code == 1, err
    assert "baseline.prior.accuracy" in err
    assert not any("cached in" in n for n in json.loads(out)["baseline_notes"])

    # a baseline this evaluation has not is a usage error naming those it has
    code, _, err = invoke("evaluate", "--no-plots", "--require", "rmse<=baseline.mean.rmse")
    assert code == 2
    assert "Baselines available here: prior, gbm" in err
    assert "Traceback" not in err
