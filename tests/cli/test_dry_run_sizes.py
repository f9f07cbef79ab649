"""`dltrain train --dry-run` on models too big to build (#12): refused in seconds and bounded
memory, with one paragraph and exit 2, never an allocation or an internal error."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import RecipeWriter, invoke

# The CLI in this process, then what it cost: its peak memory and whether TensorFlow loaded.
PROBE = """
import json, sys
sys.argv = ["dltrain", *json.loads(sys.argv[1])]
from dltrain.cli import main
code = 0
try:
    main()
except SystemExit as exit:
    code = exit.code
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"tensorflow", "keras"})
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forked parent through exec
status = open("/proc/self/status").read().split("VmHWM:")[1]
peak = int(status.split()[0]) * 1024
print("COST=" + json.dumps({"code": code, "heavy": heavy, "peak": peak}), file=sys.stderr)
"""


def test_a_width_of_1e11_is_refused_in_a_second_without_tensorflow(
    tmp_path: Path, idx_folder: Path, write_recipe: RecipeWriter
) -> None:
    recipe = write_recipe(idx_folder)
    document = yaml.safe_load(recipe.read_text())
    document["model"]["dense"] = ["BOMB"]  # YAML's own spelling of the number below
    recipe.write_text(yaml.safe_dump(document).replace("- BOMB", "- 1e11"))
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(["train", "--dry-run"])],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    seconds = time.perf_counter() - started
    cost = json.loads(next(x for x in done.stderr.splitlines() if x.startswith("COST="))[5:])
    assert cost["code"] == 2, done.stderr
    assert "`model.dense.0`: a layer width is at most 65,536" in done.stderr
    assert "Received: 100,000,000,000" in done.stderr and "Traceback" not in done.stderr
    assert cost["heavy"] == []  # refused while reading the recipe: nothing was built
    assert cost["peak"] < 300 * 2**20, cost
    assert seconds < 20, seconds  # about half a second; generous for a loaded CI machine


@pytest.fixture
def project(
    tmp_path: Path, idx_folder: Path, write_recipe: RecipeWriter, monkeypatch: pytest.MonkeyPatch
) -> Path:
    write_recipe(idx_folder)
    monkeypatch.chdir(tmp_path)
    assert invoke("prepare")[0] == 0
    return tmp_path


def test_a_model_too_big_for_this_machine_is_refused_before_it_is_built(project: Path) -> None:
    """Within the width limit, but 8.6 billion weights: measured, not allocated, and refused."""
    started = time.perf_counter()
    code, out, err = invoke("train", "--dry-run", "--set", "model.dense=[65536, 65536, 65536]")
    assert time.perf_counter() - started < 60
    text = " ".join(err.split())
    assert code == 2 and out == "", err
    assert "recipe error: The recipe's cnn model cannot be trained on this machine" in text
    assert "The largest layers: dense" in text and "Narrow them" in text
    assert "Traceback" not in err and "internal error" not in err
    assert not (project / "runs").exists()


def test_the_dry_run_reports_the_memory_training_takes(project: Path) -> None:
    code, out, err = invoke("train", "--dry-run", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["weight_bytes"] == 4 * report["parameters"]
    assert report["weight_bytes"] < report["training_bytes"] < report["memory_bytes"]
    assert "memory" in err and "training ≈" in err


def test_the_dry_run_times_steps_to_estimate_an_epoch(project: Path) -> None:
    code, out, err = invoke("train", "--dry-run", "--json", "--epochs", "3")
    assert code == 0, err
    report = json.loads(out)
    timing = report["timing"]
    manifest = json.loads((project / "data" / "tiny" / "manifest.json").read_text())
    batch = 32  # the recipe's train.batch_size
    train_rows = manifest["splits"]["train"]["num_examples"]
    validation_rows = manifest["splits"]["validation"]["num_examples"]
    # the steps the estimate multiplies are the batches the pipeline yields, as train counts them
    assert timing["steps_per_epoch"] == report["steps_per_epoch"] == math.ceil(train_rows / batch)
    assert timing["validation_steps"] == math.ceil(validation_rows / batch)
    # fewer batches than warm-up + timed steps: the split repeats, every step is still timed
    assert timing["steps_per_epoch"] < timing["warmup_steps"] + timing["timed_steps"]
    assert timing["warmup_steps"] == 2 and 5 <= timing["timed_steps"] <= 50
    for key in ("step_seconds", "validation_step_seconds", "epoch_seconds", "total_seconds"):
        assert math.isfinite(timing[key]) and timing[key] > 0, key
    assert timing["epoch_seconds"] == pytest.approx(
        timing["steps_per_epoch"] * timing["step_seconds"]
        + timing["validation_steps"] * timing["validation_step_seconds"]
    )
    assert timing["epochs"] == 3
    assert timing["total_seconds"] == pytest.approx(3 * timing["epoch_seconds"])
    assert 0 <= timing["epoch_seconds_error"] < math.inf and report["not_timed"] is None
    text = " ".join(err.replace("│", " ").split())  # the table wraps its cells
    assert "per epoch" in text and f"{timing['timed_steps']} timed steps after 2 warm-up" in text
    assert not (project / "runs").exists()  # the timed steps leave nothing behind


def test_a_model_too_big_to_build_safely_is_not_timed(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Small enough to be measured and allowed, too big a share of memory to be built here."""
    from dltrain.training import epoch_time

    monkeypatch.setattr(epoch_time, "MEMORY_SHARE", 1e-9)
    code, out, err = invoke("train", "--dry-run", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["timing"] is None and "over half of" in report["not_timed"]
    assert "not timed: training it takes about" in " ".join(err.replace("│", " ").split())
