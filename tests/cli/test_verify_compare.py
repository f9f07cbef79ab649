"""dltrain verify and dltrain compare from the shell, on a tiny table trained for two epochs.

verify retrains a deterministic run and finds it reproduced (exit 0); a run whose history or
recorded weights digest was tampered with is not (exit 1); runs it cannot verify are refused
(exit 2). compare shows two runs' learning rates and metrics side by side.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.cli.eval_projects import write_houses, write_houses_recipe
from tests.conftest import invoke, run_dltrain

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two finished runs of a small regression recipe: learning rate 0.01 and 0.05."""
    root = tmp_path_factory.mktemp("verify")
    write_houses(root / "houses.csv", 200, seed=4)
    write_houses_recipe(
        root / "dltrain.yaml",
        name="house",
        dropout=0.1,
        epochs=2,
        shuffle=True,
        optimizer={"learning_rate": 0.01},
    )
    for args in (["prepare"], ["train"], ["train", "--lr", "0.05"]):
        result = run_dltrain(*args, cwd=root)
        assert result.returncode == 0, (args, result.stderr)
    return root


def runs(project: Path) -> list[Path]:
    return sorted(p for p in (project / "runs" / "house").iterdir() if (p / "run.json").is_file())


def test_verify_reproduces_a_deterministic_run(project: Path) -> None:
    original = runs(project)[0]
    result = run_dltrain(
        "verify", str(original.relative_to(project)), "--json", "--keep", cwd=project
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["passed"] and document["deterministic"] and document["differing"] == []
    checks = {c["check"]: c for c in document["checks"]}
    assert checks["history: loss"]["verdict"] == "identical"
    assert (
        checks["weights"]["original"]
        == json.loads((original / "run.json").read_text())["weights_sha256"]
    )
    assert checks["weights digest (run.json)"]["verdict"] == "identical"
    assert "Reproduced" in result.stderr
    kept = Path(document["rerun"])
    assert kept.parent == original.parent and (kept / "model.keras").is_file()
    info = json.loads((kept / "run.json").read_text())
    assert info["data"]["folder"] == str(project / "data" / "house")  # not the scratch link
    assert info["weights_sha256"] == checks["weights"]["rerun"]
    shutil.rmtree(kept)


def test_verify_finds_a_tampered_history_and_digest(project: Path) -> None:
    tampered = project / "runs" / "house" / "29990101-000000-beef"
    shutil.copytree(runs(project)[0], tampered)
    history = (tampered / "history.csv").read_text().splitlines()
    header, first = history[0].split(","), history[1].split(",")
    column = header.index("val_loss")
    first[column] = repr(float(first[column]) * 1.01)
    (tampered / "history.csv").write_text("\n".join([history[0], ",".join(first), *history[2:]]))
    info = json.loads((tampered / "run.json").read_text())
    (tampered / "run.json").write_text(json.dumps({**info, "weights_sha256": "0" * 64}))
    try:
        result = run_dltrain("verify", str(tampered), "--json", cwd=project)
        assert result.returncode == 1, result.stderr
        document = json.loads(result.stdout)
        assert not document["passed"]
        assert document["differing"] == ["history: val_loss", "weights digest (run.json)"]
        assert "Not reproduced" in result.stderr and "Traceback" not in result.stderr
    finally:
        shutil.rmtree(tampered)


def test_verify_refuses_runs_it_cannot_verify(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project)
    code, _, err = invoke("verify", "runs/house/nope")
    assert code == 2 and "does not exist" in err
    unfinished = project / "runs" / "house" / "29990101-000000-dead"
    unfinished.mkdir()
    (unfinished / "run.json").write_text(json.dumps({"status": "interrupted"}))
    try:
        code, _, err = invoke("verify", str(unfinished))
        assert code == 2 and "only a finished run can be verified" in err
        assert f"dltrain train --resume --run {unfinished}" in err
    finally:
        shutil.rmtree(unfinished)
    code, _, err = invoke("verify", str(runs(project)[0]), "--tolerance", "-1")
    assert code == 2 and "--tolerance must be a number >= 0" in err
    manifest = project / "data" / "house" / "manifest.json"
    saved = manifest.read_text()
    document = json.loads(saved)
    document["source"]["fingerprint"] = "f" * 64  # as if prepared again from a changed source
    manifest.write_text(json.dumps(document))
    try:
        code, _, err = invoke("verify", str(runs(project)[0]))
        assert code == 2 and "changed since run" in err and "Traceback" not in err
    finally:
        manifest.write_text(saved)


def test_compare_shows_learning_rates_and_metrics(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow, fast = runs(project)[:2]
    monkeypatch.chdir(project)
    for run in (slow, fast):  # in this process: TensorFlow starts once for both
        code, _, err = invoke("evaluate", "--run", str(run), "--no-plots")
        assert code == 0, err
    result = run_dltrain("compare", str(slow), str(fast), "--json", cwd=project)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["differences"] == [
        {"key": "train.optimizer.learning_rate", "values": [0.01, 0.05]}
    ]
    rmse = next(m for m in document["metrics"] if m["metric"] == "rmse")
    tested = [json.loads((r / "metrics.json").read_text())["metrics"]["rmse"] for r in (slow, fast)]
    assert rmse["values"] == tested
    assert "train.optimizer.learning_rate" in result.stderr and "rmse" in result.stderr
    result = run_dltrain("compare", str(slow), str(fast), "--format", "markdown", cwd=project)
    assert result.returncode == 0, result.stderr
    assert "| `train.optimizer.learning_rate` | `0.01` | `0.05` |" in result.stdout
