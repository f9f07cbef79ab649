"""Trained tiny projects for the evaluate / predict / export / runs tests, built once per session.

Training is the slow part, so one template holds every run those tests need; each test copies it
into its own folder, so no test sees another's files.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import yaml
from typer.testing import CliRunner

from dltrain.cli import app
from tests.conftest import synthetic_images, write_idx

runner = CliRunner()


@contextlib.contextmanager
def working_directory(path: Path) -> Iterator[None]:
    previous = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


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


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


@functools.cache
def template() -> Path:
    """A project with two good 3-class runs and one untrained-looking one (``tiny``), and a
    binary run (``bin``), each trained one epoch on 12×12 synthetic images."""
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
    with working_directory(root):
        for args in (
            ["prepare"],
            ["train"],
            ["train"],
            # a near-untrained model: the weak candidate of the baseline tests
            ["train", "--lr", "1e-7", "--optimizer", "sgd"],
            ["prepare", "--recipe", "bin.yaml"],
            ["train", "--recipe", "bin.yaml", "--epochs", "2"],
        ):
            code, _, err = invoke(*args)
            assert code == 0, f"{args}: {err}"
    return root


def copy_project(destination: Path) -> Path:
    """A private copy of the template in ``destination``/project."""
    target = destination / "project"
    shutil.copytree(template(), target)
    return target


def runs_of(project: Path, name: str = "tiny") -> list[Path]:
    return sorted(p for p in (project / "runs" / name).iterdir() if p.is_dir())
