"""A GAN run through the real CLI: evaluate judges its generated images with its discriminator
(metrics, gates, a sample grid, reproducible by seed), and every refusal is exit 2 with nothing
on disk damaged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from tests.cli.eval_projects import GAN_SAMPLES, copy_gan_project, invoke, runs_of

GENERATION_METRICS = [
    "discriminator_accuracy",
    "real_accuracy",
    "fake_accuracy",
    "real_score_mean",
    "fake_score_mean",
]
IMAGE = (12, 12)  # the synthetic images' height and width, one channel


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = copy_gan_project(tmp_path)
    monkeypatch.chdir(path)
    return path


def gan_run(project: Path) -> Path:
    (run,) = runs_of(project, "gan")
    return run


def evaluate_json(*args: str) -> tuple[int, dict, str]:
    code, out, err = invoke("evaluate", "--json", *args)
    return code, (json.loads(out) if out.strip() else {}), err


def test_evaluate_judges_generated_images_and_draws_a_grid(project: Path) -> None:
    run = gan_run(project)
    code, document, err = evaluate_json("--bootstrap", "50")
    assert code == 0, err
    assert document["task"] == "generation" and document["num_examples"] == 40  # the test split
    assert document["data"]["generated"] == {"num_images": 40, "seed": 7}  # the recipe's seed
    metrics = document["metrics"]
    assert list(metrics) == GENERATION_METRICS
    assert all(0.0 <= value <= 1.0 for value in metrics.values()), metrics
    # the overall accuracy is the mean of the two sides' (as many generated images as real)
    expected = (metrics["real_accuracy"] + metrics["fake_accuracy"]) / 2
    assert metrics["discriminator_accuracy"] == pytest.approx(expected)
    assert set(document["intervals"]) == set(GENERATION_METRICS)
    assert json.loads((run / "metrics.json").read_text())["metrics"] == metrics
    assert "plots/test/samples.png" in document["plots"]
    grid = Image.open(run / "plots" / "test" / "samples.png")
    assert grid.size == (GAN_SAMPLES * IMAGE[1], GAN_SAMPLES * IMAGE[0]) and grid.mode == "L"
    for name in GENERATION_METRICS:  # the stderr table shows every metric
        assert name in err
    assert "generation" in err


def test_the_seed_makes_the_evaluation_again(project: Path) -> None:
    grid = gan_run(project) / "plots" / "test" / "samples.png"
    code, first, err = evaluate_json("--seed", "3")
    assert code == 0, err
    first_grid = grid.read_bytes()
    code, again, err = evaluate_json("--seed", "3")
    assert code == 0, err
    assert again["metrics"] == first["metrics"] and grid.read_bytes() == first_grid
    code, other, err = evaluate_json("--seed", "4")
    assert code == 0, err
    assert other["data"]["generated"]["seed"] == 4
    assert other["metrics"]["fake_score_mean"] != first["metrics"]["fake_score_mean"]
    assert other["metrics"]["real_score_mean"] == first["metrics"]["real_score_mean"]
    assert grid.read_bytes() != first_grid


def test_gates_on_generation_metrics_decide_the_exit_code(project: Path) -> None:
    code, document, err = evaluate_json("--no-plots", "--require", "discriminator_accuracy<=1.0")
    assert code == 0, err
    assert document["gates"][0]["passed"] and document["passed"]
    code, document, err = evaluate_json(
        "--no-plots", "--require", "discriminator_accuracy<=1.0", "--require", "real_accuracy>1"
    )
    assert code == 1
    assert "real_accuracy is" in " ".join(err.split()) and not document["passed"]


def test_evaluate_refusals_leave_the_earlier_evaluation(project: Path) -> None:
    run = gan_run(project)
    (run / "metrics.json").write_text('{"earlier": true}')
    for args, needle in (
        (["--require", "discriminator_acc<=0.9"], "Did you mean `discriminator_accuracy`?"),
        (["--require", "accuracy>=0.9"], "Known metrics: discriminator_accuracy"),
        (["--optimize-threshold", "f1"], "is a generation model"),
    ):
        code, out, err = invoke("evaluate", *args)
        assert code == 2, err
        assert "Traceback" not in err and out == ""
        assert needle in " ".join(err.split()), err
    assert json.loads((run / "metrics.json").read_text()) == {"earlier": True}
    assert not (run / "plots").exists()
