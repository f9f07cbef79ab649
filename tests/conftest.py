"""Shared fixtures: tiny synthetic datasets in the real on-disk formats, and recipe writers."""

from __future__ import annotations

import gzip
import json
import struct
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def invoke(*args: str) -> tuple[int, str, str]:
    """Run the real dltrain CLI in-process: (exit code, stdout, stderr)."""
    from typer.testing import CliRunner

    from dltrain.cli import app

    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


MODULES_PROBE = """
import json, sys
sys.argv = ["dltrain", *json.loads(sys.argv[1])]
from dltrain.cli import main
try:
    main()
except SystemExit:
    pass
print("LOADED=" + json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def modules_loaded_by(*args: str) -> tuple[set[str], str]:
    """Run ``dltrain ARGS`` in a fresh interpreter: every module it loaded, and its stdout."""
    done = subprocess.run(
        [sys.executable, "-c", MODULES_PROBE, json.dumps(list(args))],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    line = next(x for x in done.stderr.splitlines() if x.startswith("LOADED="))
    return set(json.loads(line.removeprefix("LOADED="))), done.stdout


def run_dltrain(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run ``python -m dltrain ARGS`` in its own process, as a user's shell would."""
    return subprocess.run(
        [sys.executable, "-m", "dltrain", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


DEMO_RECIPE = REPO / "recipes" / "mnist_demo.yaml"


@dataclass(frozen=True)
class DemoProject:
    """The bundled demo prepared and trained (one epoch) from the shell, and what each said."""

    root: Path
    prepared: subprocess.CompletedProcess[str]
    trained: subprocess.CompletedProcess[str]


@pytest.fixture(scope="session")
def demo_project(tmp_path_factory: pytest.TempPathFactory) -> DemoProject:
    """``dltrain prepare`` and ``dltrain train --epochs 1`` of the demo recipe, once a session:
    the slow demo tests evaluate, predict and export its run (none changes what another reads)."""
    root = tmp_path_factory.mktemp("demo")
    prepared = run_dltrain("prepare", "--recipe", str(DEMO_RECIPE), cwd=root)
    assert prepared.returncode == 0, prepared.stderr
    trained = run_dltrain("train", "--recipe", str(DEMO_RECIPE), "--epochs", "1", cwd=root)
    assert trained.returncode == 0, trained.stderr
    return DemoProject(root, prepared, trained)


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write ``array`` (uint8) as a gzip-compressed IDX file, as MNIST distributes them."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def synthetic_images(
    num: int, num_classes: int = 3, size: int = 12, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Images whose class is written in them (a bright band at a class-specific row), so a model
    can learn them in one epoch, plus noise so they are not all alike."""
    rng = np.random.default_rng(seed)
    labels = np.arange(num) % num_classes
    rng.shuffle(labels)
    images = rng.integers(0, 60, size=(num, size, size), dtype=np.uint8)
    band = size // num_classes
    for i, label in enumerate(labels):
        images[i, label * band : (label + 1) * band, :] = 230
    return images, labels.astype(np.uint8)


@pytest.fixture
def idx_folder(tmp_path: Path) -> Path:
    """An MNIST-style folder with its own train (240) and test (60) sets of 12×12 images."""
    folder = tmp_path / "raw"
    folder.mkdir()
    train_x, train_y = synthetic_images(240, seed=1)
    test_x, test_y = synthetic_images(60, seed=2)
    write_idx(folder / "train-images-idx3-ubyte.gz", train_x)
    write_idx(folder / "train-labels-idx1-ubyte.gz", train_y)
    write_idx(folder / "t10k-images-idx3-ubyte.gz", test_x)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", test_y)
    return folder


RecipeWriter = Callable[..., Path]


@pytest.fixture
def write_recipe(tmp_path: Path) -> RecipeWriter:
    """Write a small, fast recipe (tiny CNN, one epoch) into the test's folder and return it."""

    def write(source: Path, *, path: Path | None = None, **sections: Any) -> Path:
        recipe: dict[str, Any] = {
            "name": "tiny",
            "seed": 7,
            "data": {"source": str(source), "split": {"validation": 0.2, "test": 0.2}},
            "model": {"family": "cnn", "filters": [4], "dense": [8], "dropout": 0.0},
            "train": {"epochs": 1, "batch_size": 32, "optimizer": {"learning_rate": 0.01}},
        }
        for key, value in sections.items():
            if isinstance(value, dict) and isinstance(recipe.get(key), dict):
                recipe[key] = {**recipe[key], **value}
            else:
                recipe[key] = value
        target = path or tmp_path / "dltrain.yaml"
        target.write_text(yaml.safe_dump(recipe, sort_keys=False))
        return target

    return write
