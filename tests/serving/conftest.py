"""A trained tiny project (a house-price table, a binary image classifier) and real `dltrain
serve` processes over its runs, on free ports of 127.0.0.1, shared by the serving tests."""

from __future__ import annotations

import contextlib
import functools
import json
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from tests.cli.eval_projects import houses_data, recipe, write_houses
from tests.conftest import invoke, synthetic_images


@functools.cache
def trained_project() -> Path:
    """prepare + train (one epoch) of ``house`` (dltrain.yaml) and ``bin`` (bin.yaml)."""
    root = Path(tempfile.mkdtemp(prefix="dltrain-serve-"))
    write_houses(root / "houses.csv", 200, seed=4)
    houses = recipe("house", "houses.csv")
    houses["data"] = houses_data()
    houses["model"] = {"family": "mlp", "units": [8], "dropout": 0.0}
    (root / "dltrain.yaml").write_text(yaml.safe_dump(houses))
    x, y = synthetic_images(160, num_classes=2, seed=3)
    np.savez(root / "binary.npz", x=x, y=y.astype(np.int64))
    binary = recipe("bin", "binary.npz")
    binary["data"]["classes"] = ["ham", "spam"]  # type: ignore[index]
    (root / "bin.yaml").write_text(yaml.safe_dump(binary))
    # in this process: the servers and predict are the subprocesses these tests are about
    with contextlib.chdir(root):
        for args in (
            ["prepare"],
            ["train", "--lr", "0.05"],
            ["prepare", "--recipe", "bin.yaml"],
            ["train", "--recipe", "bin.yaml"],
        ):
            code, _, err = invoke(*args)
            assert code == 0, f"{args}: {err}"
    return root


@pytest.fixture(scope="session")
def project() -> Path:
    return trained_project()


@dataclass
class Server:
    """A running `dltrain serve` process and what it wrote to stderr."""

    process: subprocess.Popen[str]
    url: str
    stderr: list[str] = field(default_factory=list)

    def request(
        self, method: str, path: str, body: Any = None, raw: bytes | None = None
    ) -> tuple[int, Any]:
        """(status, parsed JSON answer) of one HTTP request."""
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def stop(self) -> int:
        """SIGTERM, then the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)


@contextlib.contextmanager
def serving(project: Path, *args: str) -> Iterator[Server]:
    """`dltrain serve --port 0 ARGS` in ``project``, once it says where it listens."""
    process = subprocess.Popen(
        [sys.executable, "-m", "dltrain", "serve", "--port", "0", *args],
        cwd=project,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    assert process.stderr is not None
    lines: list[str] = []
    for line in process.stderr:  # ends when the process does: no endless wait
        lines.append(line)
        found = re.search(r"on (http://127\.0\.0\.1:\d+)", line)
        if found:
            break
    else:
        process.wait(timeout=60)
        raise AssertionError(f"serve exited with {process.returncode}: {''.join(lines)}")
    server = Server(process, found.group(1), lines)
    drain = threading.Thread(target=lambda: server.stderr.extend(process.stderr or []), daemon=True)
    drain.start()
    try:
        yield server
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=60)


@pytest.fixture(scope="module")
def house_server(project: Path) -> Iterator[Server]:
    with serving(project, "--max-body", "200000") as server:
        yield server


def copy_project(destination: Path) -> Path:
    target = destination / "project"
    shutil.copytree(trained_project(), target)
    return target
