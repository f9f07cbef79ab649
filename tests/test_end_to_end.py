"""The shell pipeline on the bundled demo data, as a user runs it, and Ctrl-C during training
(real subprocesses)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import DEMO_RECIPE, DemoProject, RecipeWriter, invoke
from tests.conftest import run_dltrain as dltrain

pytestmark = pytest.mark.slow
DEMO = str(DEMO_RECIPE)
TF_CHATTER = ("oneDNN", "cuda", "absl::", "cpu_feature_guard", "This TensorFlow binary")


def test_demo_pipeline_from_the_shell(demo_project: DemoProject) -> None:
    evaluated = dltrain("evaluate", "--recipe", DEMO, "--json", cwd=demo_project.root)
    assert evaluated.returncode == 0, evaluated.stderr
    document = json.loads(evaluated.stdout)  # stdout holds the JSON document and nothing else
    assert document["num_examples"] == 1000
    assert document["metrics"]["accuracy"] > 0.9  # one epoch on 8k digits
    for output in (demo_project.prepared, demo_project.trained, evaluated):
        for noise in TF_CHATTER:
            assert noise not in output.stderr, f"TensorFlow chatter reached the user: {noise}"


def test_ctrl_c_stops_training_with_exit_130(
    tmp_path: Path, idx_folder: Path, write_recipe: RecipeWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a tiny project: the signal needs a run in training, not the demo's epochs of it
    write_recipe(idx_folder, train={"epochs": 1000, "early_stopping": {"enabled": False}})
    monkeypatch.chdir(tmp_path)
    assert invoke("prepare")[0] == 0  # in this process; the train to interrupt has its own
    process = subprocess.Popen(
        [sys.executable, "-m", "dltrain", "train"],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        # as from a terminal: a suite started in the background (`make test &`) hands its
        # children an ignored SIGINT, and Python then never raises KeyboardInterrupt
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert process.stderr is not None
    deadline = time.monotonic() + 300
    for line in process.stderr:
        if re.match(r"epoch +1/", line) or time.monotonic() > deadline:
            break
    process.send_signal(signal.SIGINT)
    rest = process.stderr.read()
    assert process.wait(timeout=120) == 130, rest
    assert "interrupted" in rest and "Traceback" not in rest
    assert "dltrain train --resume --run" in rest
    (run,) = (tmp_path / "runs" / "tiny").iterdir()
    assert json.loads((run / "run.json").read_text())["status"] == "interrupted"
    assert not (run / "model.keras").exists()
