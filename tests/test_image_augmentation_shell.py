"""Crop, MixUp, CutMix and --tta from the shell, as a user runs them (real subprocesses for
train, evaluate and predict; the data is prepared in this process)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import RecipeWriter, invoke
from tests.conftest import run_dltrain as dltrain

pytestmark = pytest.mark.slow


def test_mixing_cnn_trains_and_is_scored_with_tta_from_the_shell(
    tmp_path: Path, idx_folder: Path, write_recipe: RecipeWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    mixing = {"crop": {"padding": 2}, "mixup": {"alpha": 0.2}, "cutmix": {"alpha": 1.0}}
    write_recipe(
        idx_folder,
        data={"split": {"validation": 0.2}},
        model={"augmentation": {"flip": "horizontal", **mixing}},
        train={"epochs": 2},
    )
    monkeypatch.chdir(tmp_path)
    assert invoke("prepare")[0] == 0
    trained = dltrain("train", "--json", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    evaluated = dltrain("evaluate", "--tta", "2", "--json", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    document = json.loads(evaluated.stdout)
    assert document["tta"]["views"] == 2 and document["metrics"]["accuracy"] > 0.8
    assert "averaged over 2 views" in evaluated.stderr
    images = str(next(idx_folder.glob("t10k-images*")))
    refused = dltrain("predict", "-i", images, "-o", "p.csv", "--tta", "99", cwd=tmp_path)
    assert refused.returncode == 2 and "1 (off) to 64" in refused.stderr
    assert "Traceback" not in refused.stderr and not (tmp_path / "p.csv").exists()
