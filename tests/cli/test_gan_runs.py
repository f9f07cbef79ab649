"""A GAN run through the real CLI: evaluate judges its generated images with its discriminator
(metrics, gates, a sample grid, reproducible by seed), predict writes generated images as PNG
files, and every refusal is exit 2 with nothing on disk damaged."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
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


def test_predict_writes_generated_images(project: Path) -> None:
    run = gan_run(project)
    code, out, err = invoke("predict", "--num-samples", "5", "--output", "gen/samples", "--json")
    assert code == 0, err
    summary = json.loads(out)
    names = [f"sample-000{i}.png" for i in range(1, 6)]
    assert summary["files"] == names and summary["num_examples"] == 5
    assert summary["task"] == "generation" and summary["run"] == str(run)
    assert summary["image_shape"] == [*IMAGE, 1] and summary["seed"] == 7
    folder = project / "gen" / "samples"
    assert sorted(p.name for p in folder.iterdir()) == names
    images = [Image.open(folder / name) for name in names]
    assert all(im.size == IMAGE[::-1] and im.mode == "L" for im in images)
    assert len({im.tobytes() for im in images}) == 5  # five different noise vectors
    assert not list((project / "gen").glob(".samples.partial-*"))
    assert "Wrote 5 generated images" in err


def test_the_same_seed_writes_the_same_images(project: Path) -> None:
    for folder, seed in (("a", "1"), ("b", "1"), ("c", "2")):
        args = ["predict", "--num-samples", "3", "--batch-size", "2", "-o", folder, "--seed", seed]
        code, _, err = invoke(*args)
        assert code == 0, err

    def pixels(folder: str) -> list[bytes]:
        return [Image.open(p).tobytes() for p in sorted((project / folder).iterdir())]

    assert pixels("a") == pixels("b") and pixels("a") != pixels("c")


def test_an_empty_output_folder_is_filled(project: Path) -> None:
    (project / "empty").mkdir()
    code, _, err = invoke("predict", "--num-samples", "2", "--output", "empty")
    assert code == 0, err
    assert len(list((project / "empty").iterdir())) == 2


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (
            ["--num-samples", "2", "-o", "old"],
            ["already holds 1 entry (keep.png)", "Name a new or empty folder"],
        ),
        (["--num-samples", "2", "-o", "old.csv"], ["names a .csv file", "into a folder"]),
        (["--num-samples", "2", "-o", "old/keep.png"], ["names a .png file"]),
        (["--num-samples", "2", "-o", "x", "-i", "images.npz"], ["--input images.npz was given"]),
        (["--num-samples", "2", "-o", "x", "--threshold", "0.3"], ["--threshold 0.3 was given"]),
        (
            ["--num-samples", "2", "-o", "x", "--input-format", "npz"],
            ["--input-format npz was given"],
        ),
        (["-o", "x.csv"], ["is a GAN (task generation)", "--num-samples N --output DIR"]),
        (
            ["-i", "images.npz", "-o", "x.csv"],
            ["Received --input", "which a GAN does not read", "--num-samples N"],
        ),
        (["-o", "x.csv", "--seed", "3"], ["--seed 3 fixes the images", "add --num-samples"]),
        (
            ["--recipe", "cls.yaml", "--num-samples", "2", "-o", "x"],
            ["is a multiclass model", "Drop --num-samples", "--input FILE"],
        ),
        (["--recipe", "cls.yaml", "-o", "x.csv"], ["Predict needs --input", "Received none"]),
    ],
)
def test_predict_refusals_exit_2_and_damage_nothing(
    project: Path, args: list[str], needles: list[str]
) -> None:
    (project / "old").mkdir()
    (project / "old" / "keep.png").write_bytes(b"earlier")
    code, out, err = invoke("predict", *args)
    assert code == 2, err
    assert "Traceback" not in err and out == ""
    flat = " ".join(err.split())
    for needle in needles:
        assert needle in flat, err
    assert [p.name for p in (project / "old").iterdir()] == ["keep.png"]
    assert (project / "old" / "keep.png").read_bytes() == b"earlier"
    assert not (project / "x").exists() and not (project / "x.csv").exists()
    assert not list(project.glob(".*partial-*"))


def test_a_failure_while_writing_leaves_no_folder(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dltrain.evaluation.generation as generation

    written: list[Path] = []

    def fail_on_the_third(image: np.ndarray, path: Path) -> Path:
        if len(written) == 2:
            raise OSError("disk full")
        written.append(path)
        return Path(path)

    monkeypatch.setattr(generation, "save_png", fail_on_the_third)
    code, _, err = invoke("predict", "--num-samples", "4", "--output", "gen")
    assert code == 1 and "disk full" in err
    assert len(written) == 2
    assert not (project / "gen").exists() and not list(project.glob(".gen.partial-*"))
