"""dltrain find-lr through the real CLI: plot, curve, suggestion, and its error paragraphs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import RecipeWriter, invoke


@pytest.fixture
def project(
    tmp_path: Path, idx_folder: Path, write_recipe: RecipeWriter, monkeypatch: pytest.MonkeyPatch
) -> Path:
    write_recipe(idx_folder, train={"batch_size": 16, "loss": {"name": "focal"}})
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.slow
def test_find_lr_suggests_a_rate_that_train_takes(project: Path) -> None:
    assert invoke("prepare")[0] == 0
    code, out, err = invoke("find-lr", "--json", "--steps", "60", "--start-lr", "1e-5")
    assert code == 0, err
    found = json.loads(out)
    folder = project / "runs" / "tiny" / "lr-finder"
    assert found["plot"] == str(folder / "lr_finder.png") and found["rule"] == "minimum / 10"
    assert (folder / "lr_finder.png").read_bytes()[:4] == b"\x89PNG"
    curve = json.loads((folder / "lr_finder.json").read_text())
    assert curve["batch_size"] == 16 and curve["optimizer"] == "adam"
    assert len(curve["learning_rates"]) == found["steps_run"] <= 60
    assert 1e-5 <= found["suggestion"] == pytest.approx(found["minimum_learning_rate"] / 10)
    suggested = f"{found['suggestion']:.2g}"
    assert f"Use it: dltrain train --lr {suggested}" in err
    assert [p.name for p in folder.parent.iterdir()] == ["lr-finder"]  # and no run

    code, out, err = invoke("train", "--json", "--lr", suggested)
    assert code == 0, err
    assert json.loads(out)["epochs_run"] == 1


def test_a_backwards_range_is_a_usage_error(project: Path) -> None:
    code, out, err = invoke("find-lr", "--start-lr", "1", "--end-lr", "0.1")
    assert code == 2 and out == ""
    assert "usage error" in err and "--start-lr 1e-6 --end-lr 1" in err


def test_no_prepared_data_is_a_data_error(project: Path) -> None:
    code, _, err = invoke("find-lr", "--steps", "20")
    assert code == 2
    assert "data error" in err and "dltrain prepare" in err


def test_a_gan_is_refused_with_what_to_do_instead(project: Path) -> None:
    gan = "model={family: gan, latent_dim: 8, filters: [8]}"
    code, out, err = invoke("find-lr", "--set", gan, "--set", "train.loss.name=auto")
    assert code == 2 and out == ""
    text = " ".join(err.split())
    assert "cannot probe" in text and "gan model" in text and "dltrain tune" in text
    assert not (project / "runs").exists()


@pytest.mark.slow
def test_an_autoencoder_sweeps_its_own_reconstruction_error(project: Path) -> None:
    assert invoke("prepare")[0] == 0
    autoencoder = "model={family: autoencoder, units: [16], latent_dim: 4}"
    code, out, err = invoke(
        "find-lr", "--json", "--steps", "40", "--set", autoencoder, "--set", "train.loss.name=auto"
    )
    assert code in (0, 1), err  # 1: no suggestion, which a 40-step sweep may give
    curve = json.loads((project / "runs" / "tiny" / "lr-finder" / "lr_finder.json").read_text())
    # the mean squared reconstruction error of pixels scaled to [0, 1], not a cross-entropy of
    # class labels against an error score
    assert 0 < curve["losses"][0] < 1 and min(curve["losses"]) >= 0
