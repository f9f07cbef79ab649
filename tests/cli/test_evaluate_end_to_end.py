"""prepare → train → evaluate --require → predict → export on the bundled MNIST sample, as a CI
pipeline runs it: real subprocesses, exit codes, stdout JSON, files on disk."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import DEMO_RECIPE, REPO, DemoProject
from tests.conftest import run_dltrain as dltrain

pytestmark = pytest.mark.slow
DEMO = str(DEMO_RECIPE)
TEST_IMAGES = REPO / "demo" / "mnist" / "t10k-images-idx3-ubyte.gz"


def test_pipeline_with_gates_predict_and_export(demo_project: DemoProject) -> None:
    # prepare and train --epochs 1 from the shell: the shared demo_project (tests/conftest.py)
    root = demo_project.root

    passed = dltrain(
        "evaluate", "--recipe", DEMO, "--require", "accuracy>=0.9", "--require",
        "f1_macro>=0.85", "--bootstrap", "200", "--json", cwd=root,
    )  # fmt: skip
    assert passed.returncode == 0, passed.stderr
    document = json.loads(passed.stdout)
    assert document["schema_version"] == 3 and document["task"] == "multiclass"
    assert document["num_examples"] == 1000 and all(g["passed"] for g in document["gates"])
    low, high = document["intervals"]["accuracy"]["low"], document["intervals"]["accuracy"]["high"]
    assert low <= document["metrics"]["accuracy"] <= high and high - low < 0.05
    run = Path(document["run"])
    assert (run / "plots" / "test" / "confusion_matrix.png").is_file()

    failed = dltrain(
        "evaluate", "--recipe", DEMO, "--require", "accuracy>=0.9999", "--format", "markdown",
        "--no-plots", cwd=root,
    )  # fmt: skip
    assert failed.returncode == 1, failed.stderr
    assert "❌ **failed**" in failed.stdout and "gate failed" in failed.stderr
    assert "Traceback" not in failed.stderr

    predicted = dltrain(
        "predict", "--recipe", DEMO, "--input", str(TEST_IMAGES), "--output", "digits.csv",
        "--json", cwd=root,
    )  # fmt: skip
    assert predicted.returncode == 0, predicted.stderr
    assert json.loads(predicted.stdout)["num_examples"] == 10_000
    with (root / "digits.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    labels = REPO / "demo" / "mnist" / "t10k-labels-idx1-ubyte.gz"
    from dltrain.data.readers.idx import read_idx

    truth = read_idx(labels)
    accuracy = np.mean([r["prediction"] == str(t) for r, t in zip(rows, truth, strict=True)])
    assert accuracy > 0.9  # 8k of these 10k digits were trained on; all must be scored sanely

    exported = dltrain(
        "export", "--recipe", DEMO, "--format", "saved_model", "--format", "tflite", "--json",
        cwd=root,
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    for entry in json.loads(exported.stdout)["exports"]:
        assert entry["checked_examples"] == 64 and entry["agreement"] == 1.0
        assert Path(entry["path"]).exists()
