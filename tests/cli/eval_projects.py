"""Trained tiny projects for the evaluate / predict / export / runs tests, built once per session.

Training is the slow part, so one template holds every run those tests need; each test copies it
into its own folder, so no test sees another's files.
"""

from __future__ import annotations

import contextlib
import functools
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from tests.conftest import invoke, synthetic_images, write_idx


def recipe(name: str, source: str, **extra: object) -> dict[str, object]:
    document: dict[str, object] = {
        "name": name,
        "seed": 7,
        "data": {"source": source, "split": {"validation": 0.2, "test": 0.2}},
        "model": {"family": "cnn", "filters": [4], "dense": [8], "dropout": 0.0},
        "train": {"epochs": 1, "batch_size": 32, "optimizer": {"learning_rate": 0.01}},
    }
    document.update(extra)
    return document


@functools.cache
def template() -> Path:
    """A project with a good 3-class run and an untrained-looking one (``tiny``) and a
    binary run (``bin``) and an autoencoder (``ae``) on 12×12 synthetic images, and a
    regression run on a small table of house prices (``house``)."""
    root = Path(tempfile.mkdtemp(prefix="dltrain-eval-template-"))
    raw = root / "raw"
    raw.mkdir()
    train_x, train_y = synthetic_images(240, seed=1)
    test_x, test_y = synthetic_images(60, seed=2)
    write_idx(raw / "train-images-idx3-ubyte.gz", train_x)
    write_idx(raw / "train-labels-idx1-ubyte.gz", train_y)
    write_idx(raw / "t10k-images-idx3-ubyte.gz", test_x)
    write_idx(raw / "t10k-labels-idx1-ubyte.gz", test_y)
    binary_x, binary_y = synthetic_images(300, num_classes=2, seed=3)
    np.savez(root / "binary.npz", x=binary_x, y=binary_y.astype(np.int64))
    (root / "dltrain.yaml").write_text(yaml.safe_dump(recipe("tiny", "raw")))
    binary = recipe("bin", "binary.npz")
    binary["data"]["classes"] = ["ham", "spam"]  # type: ignore[index]
    (root / "bin.yaml").write_text(yaml.safe_dump(binary))
    write_houses(root / "houses.csv", 300, seed=4)
    houses = recipe("house", "houses.csv")
    houses["data"] = houses_data()
    houses["model"] = {"family": "mlp", "units": [16], "dropout": 0.0}
    (root / "house.yaml").write_text(yaml.safe_dump(houses))
    autoencoder = recipe("ae", "raw")
    autoencoder["model"] = {"family": "autoencoder", "units": [16], "latent_dim": 4}
    (root / "ae.yaml").write_text(yaml.safe_dump(autoencoder))
    with contextlib.chdir(root):
        for args in (
            ["prepare"],
            ["train"],
            # a near-untrained model: the weak candidate of the baseline tests
            ["train", "--lr", "1e-7", "--optimizer", "sgd"],
            ["prepare", "--recipe", "bin.yaml"],
            ["train", "--recipe", "bin.yaml"],
            ["prepare", "--recipe", "house.yaml"],
            ["train", "--recipe", "house.yaml", "--epochs", "3", "--lr", "0.05"],
            ["prepare", "--recipe", "ae.yaml"],
            ["train", "--recipe", "ae.yaml", "--epochs", "2"],
        ):
            code, _, err = invoke(*args)
            assert code == 0, f"{args}: {err}"
    return root


GAN_SAMPLES = 3  # the recipe's grid side: evaluate's samples.png is 3 × 3 images


@functools.cache
def gan_template() -> Path:
    """A project with a GAN trained one epoch on 12×12 synthetic images (``gan``, the
    working directory's recipe) and a small classifier of the same images (``cls``), to be
    refused what only a GAN does."""
    root = Path(tempfile.mkdtemp(prefix="dltrain-gan-template-"))
    images, labels = synthetic_images(200, seed=5)
    np.savez(root / "images.npz", x=images, y=labels.astype(np.int64))
    gan = recipe(
        "gan",
        "images.npz",
        model={"family": "gan", "latent_dim": 8, "filters": [8, 4], "samples": GAN_SAMPLES},
        train={
            "epochs": 1,
            "batch_size": 32,
            "optimizer": {"learning_rate": 0.01},
            "early_stopping": {"monitor": "val_g_loss"},
        },
    )
    (root / "dltrain.yaml").write_text(yaml.safe_dump(gan))
    (root / "cls.yaml").write_text(yaml.safe_dump(recipe("cls", "images.npz")))
    with contextlib.chdir(root):
        for args in (
            ["prepare"],
            ["train"],
            ["prepare", "--recipe", "cls.yaml"],
            ["train", "--recipe", "cls.yaml"],
        ):
            code, _, err = invoke(*args)
            assert code == 0, f"{args}: {err}"
    return root


def copy_gan_project(destination: Path) -> Path:
    """A private copy of the GAN template in ``destination``/project."""
    target = destination / "project"
    shutil.copytree(gan_template(), target)
    return target


def write_houses(path: Path, rows: int, seed: int) -> None:
    """A small table: an id, two numbers (one with gaps), a category, and a price in dollars."""
    rng = np.random.default_rng(seed)
    rooms = rng.integers(1, 8, rows).astype(float)
    area = rng.uniform(30, 200, rows).round(1)
    district = rng.choice(["north", "south", "east"], rows)
    price = 20_000 * rooms + 1_000 * area + np.where(district == "north", 50_000, 0)
    price += rng.normal(0, 5_000, rows)
    lines = ["house_id,rooms,area,district,price"]
    for i in range(rows):
        room = "" if i % 17 == 0 else f"{rooms[i]:g}"
        lines.append(f"h{i:04d},{room},{area[i]},{district[i]},{price[i]:.0f}")
    path.write_text("\n".join(lines) + "\n")


def copy_project(destination: Path) -> Path:
    """A private copy of the template in ``destination``/project."""
    target = destination / "project"
    shutil.copytree(template(), target)
    return target


def runs_of(project: Path, name: str = "tiny") -> list[Path]:
    return sorted(p for p in (project / "runs" / name).iterdir() if p.is_dir())


def houses_data() -> dict[str, object]:
    """The recipe's data section for write_houses' table (``houses.csv``): price from the rest,
    the id column kept out, 20% validation and 20% test."""
    return {
        "source": "houses.csv",
        "target": "price",
        "columns": {"house_id": {"type": "identifier"}},
        "split": {"validation": 0.2, "test": 0.2},
    }


def write_houses_recipe(
    path: Path, *, name: str = "houses", dropout: float = 0.0, **train: object
) -> Path:
    """A regression recipe on write_houses' table (``houses.csv`` beside it): a small MLP, 3
    epochs of batch 32 in the file's order, deterministic, so that reruns retrace each other
    step for step; ``train`` keys replace those defaults."""
    recipe = {
        "name": name,
        "seed": 7,
        "data": houses_data(),
        "model": {"family": "mlp", "units": [16], "dropout": dropout},
        "train": {
            "epochs": 3,
            "batch_size": 32,
            "shuffle": False,
            "deterministic": True,
            "tensorboard": False,
            **train,
        },
    }
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


@dataclass(frozen=True)
class ScoredRows:
    """A regression project trained in this process: evaluate's RMSE on the training split, that
    split's stored rows (``__y__`` the target) and ``predict``'s output for them as raw CSV rows."""

    rmse: float
    rows: pd.DataFrame
    predicted: np.ndarray


def train_and_predict_training_rows(project: Path, recipe: dict[str, object]) -> ScoredRows:
    """prepare, train, evaluate --split train and predict the training split's rows (target
    dropped) in ``project``, the current folder; every step must succeed."""
    (project / "dltrain.yaml").write_text(yaml.safe_dump(recipe))
    for command in (["prepare"], ["train"]):
        code, _, err = invoke(*command)
        assert code == 0, err
    code, out, err = invoke("evaluate", "--json", "--split", "train")
    assert code == 0, err
    rmse = json.loads(out)["metrics"]["rmse"]
    rows = pd.read_feather(next((project / "data" / str(recipe["name"])).glob("train-*.arrow")))
    rows.drop(columns="__y__").to_csv(project / "rows.csv", index=False)
    code, _, err = invoke("predict", "-i", "rows.csv", "-o", "predictions.csv")
    assert code == 0, err
    predicted = pd.read_csv(project / "predictions.csv")["prediction"].to_numpy(float)
    return ScoredRows(rmse, rows, predicted)
