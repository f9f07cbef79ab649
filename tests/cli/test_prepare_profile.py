"""What `dltrain prepare` tells the user: profile, cleaning, splits; --json; --strict and checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from dltrain.cli import app

runner = CliRunner()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    rng = np.random.default_rng(0)
    num = 200
    frame = pd.DataFrame(
        {
            "rooms": rng.integers(1, 6, num).astype(float),
            "area": np.round(rng.normal(80, 20, num), 1),
            "town": rng.choice(["north", "south", "?"], num),
            "flag": "x",  # constant: a warning
            "sold": np.where(rng.random(num) < 0.3, "yes", "no"),
        }
    )
    frame.loc[::10, "area"] = np.nan
    frame.to_csv(tmp_path / "homes.csv", index=False)
    recipe = {"name": "homes", "data": {"source": "homes.csv", "target": "sold"}}
    (tmp_path / "dltrain.yaml").write_text(yaml.safe_dump(recipe))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_prepare_reports_profile_cleaning_and_splits(project: Path) -> None:
    result = runner.invoke(app, ["prepare", "--json"])
    assert result.exit_code == 0, result.stderr
    err = result.stderr
    assert "Profile: 200 rows, 5 columns" in err
    assert "sold (target)" in err and "constant" in err
    assert "area: 20 missing" in err and "median" in err
    assert "Class balance: no" in err
    assert "validation" in err and "test" in err
    assert "Task: binary over 2 classes" in err
    document = json.loads(result.stdout)  # stdout holds one JSON document and nothing else
    assert document["up_to_date"] is False
    profile = json.loads((project / "data" / "homes" / "profile.json").read_text())
    assert document["profile"] == profile
    assert {c["name"]: c["missing"] for c in profile["columns"]}["area"] == 20
    assert "column 'flag': constant" in profile["warnings"]


def test_strict_fails_with_exit_1_and_writes_nothing(project: Path) -> None:
    result = runner.invoke(app, ["prepare", "--strict"])
    assert result.exit_code == 1
    assert "data check failed" in result.stderr and "'flag': constant" in result.stderr
    assert "Profile: 200 rows" in result.stderr  # the user sees what failed
    assert not (project / "data").exists()
    assert runner.invoke(app, ["prepare"]).exit_code == 0
    again = runner.invoke(app, ["prepare", "--strict"])  # up to date, still refused
    assert again.exit_code == 1 and "up to date" in again.stderr


def test_a_recipe_threshold_fails_without_strict(project: Path) -> None:
    result = runner.invoke(app, ["prepare", "--set", "data.checks.max_missing=0.05"])
    assert result.exit_code == 1
    assert "'area' is 10.0% missing (checks.max_missing: 0.05)" in result.stderr
    assert (
        runner.invoke(app, ["prepare", "--set", "data.checks.max_missing=0.4"]).exit_code == 0
    )  # town: 1/3 "?"
