"""The CI recipes in docs/ci/ work: their shell steps, read from the workflow files themselves
(not copied here), run on the bundled demo data with the CI services stubbed (the job summary
file, `gh`, `curl`, `pip`), and post the report they promise. docs/ci.md shows the same files."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO

CI = REPO / "docs" / "ci"
GITHUB = CI / "github-actions.yml"
GITLAB = CI / "gitlab-ci.yml"
QUICK = {"DLTRAIN_EPOCHS": "1"}  # the workflows' own knob: one epoch is enough to check them


def _stub(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stand-in for the repository a CI job checks out: the demo recipe and data, and stubs
    on PATH for the tools a runner provides (each stub records how it was called)."""
    root = tmp_path_factory.mktemp("checkout")
    (root / "recipes").mkdir()
    shutil.copy(REPO / "recipes" / "mnist_demo.yaml", root / "recipes")
    (root / "demo").symlink_to(REPO / "demo")
    stubs = root / ".stubs"
    stubs.mkdir()
    _stub(stubs, "dltrain", f'exec "{sys.executable}" -m dltrain "$@"')
    for tool in ("pip", "gh", "curl"):  # installing and posting are the services' part
        _stub(stubs, tool, f'echo "$@" >> "{stubs}/{tool}.calls"')
    return root


def _environment(checkout: Path, *layers: dict[str, Any]) -> dict[str, str]:
    """The process environment with the stubs first on PATH, then each layer of variables,
    a later layer's values expanding an earlier one's ``$NAME`` as the runners do."""
    env = {**os.environ, "PATH": f"{checkout / '.stubs'}{os.pathsep}{os.environ['PATH']}"}
    env["PYTHONPATH"] = str(REPO)
    for layer in layers:
        for key, value in layer.items():
            env[key] = re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m[1], ""), str(value))
    return env


def _bash(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run a step as both runners do: bash, stopping at the first failing command."""
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def _calls(checkout: Path, tool: str) -> str:
    path = checkout / ".stubs" / f"{tool}.calls"
    return path.read_text() if path.exists() else ""


def test_the_docs_show_the_files_the_tests_run() -> None:
    page = (REPO / "docs" / "ci.md").read_text()
    for path in (GITHUB, GITLAB):
        assert f"```yaml\n{path.read_text()}```" in page, path.name


@pytest.mark.slow
def test_github_actions_workflow_steps(checkout: Path, tmp_path: Path) -> None:
    workflow = yaml.safe_load(GITHUB.read_text())
    (job,) = workflow["jobs"].values()
    steps = [step for step in job["steps"] if "run" in step]
    assert [s["name"] for s in steps][:4] == ["Install dltrain", "Prepare", "Train", "Evaluate"]
    summary = tmp_path / "summary.md"
    runner = {
        "GITHUB_STEP_SUMMARY": summary,
        "GITHUB_OUTPUT": tmp_path / "output",
        "GITHUB_EVENT_NAME": "pull_request",
    }
    for step in steps:
        stubbed = {k: "123" if "${{" in str(v) else v for k, v in step.get("env", {}).items()}
        env = _environment(checkout, workflow.get("env", {}), job.get("env", {}), stubbed, QUICK)
        env.update({k: str(v) for k, v in runner.items()})
        done = _bash(step["run"], checkout, env)
        assert done.returncode == 0, f"{step['name']}: {done.stderr[-3000:]}"
    report = (checkout / "report.md").read_text()
    assert "### dltrain evaluate · mnist_demo" in report and "✅ **passed**" in report
    assert summary.read_text() == report  # the job summary is the report
    assert "install -e ." in _calls(checkout, "pip")
    assert _calls(checkout, "gh").strip() == "pr comment 123 --body-file report.md"


@pytest.mark.slow
def test_gitlab_ci_job_script(checkout: Path, tmp_path: Path) -> None:
    pipeline = yaml.safe_load(GITLAB.read_text())
    job = pipeline["model"]
    script = "\n".join([*job.get("before_script", []), *job["script"]])
    assert "--format markdown" in script and "report.md" in job["artifacts"]["paths"]
    merge_request = {
        "CI_PROJECT_DIR": checkout,
        "CI_MERGE_REQUEST_IID": "7",
        "CI_PROJECT_ID": "42",
        "CI_API_V4_URL": "https://gitlab.example/api/v4",
        "GITLAB_API_TOKEN": "token-for-the-test",
    }
    variables = pipeline.get("variables", {}), job.get("variables", {})
    env = _environment(checkout, merge_request, *variables, QUICK)
    # a failing gate: the report is still posted, then the job fails with evaluate's exit 1
    env["DLTRAIN_MIN_ACCURACY"] = "1.01"
    (checkout / "report.md").unlink(missing_ok=True)
    done = _bash(script, checkout, env)
    assert done.returncode == 1, done.stderr[-3000:]
    report = (checkout / "report.md").read_text()
    assert "❌ **failed**" in report and "accuracy>=1.01" in report
    posted = _calls(checkout, "curl")
    assert "body@report.md" in posted
    assert "https://gitlab.example/api/v4/projects/42/merge_requests/7/notes" in posted
