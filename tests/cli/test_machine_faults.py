"""Faults of the machine (#12): a read-only folder, a full disk, an unwritable study database
end in exit 2 naming the path and the cause, with nothing half-written left that a later command
would trust.

Read-only: as root (who ignores file modes) a read-only bind mount, else the write bits taken
off. A full disk: a small tmpfs when this process may mount one, and everywhere an ENOSPC raised
at the atomic writer's own write.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import invoke, synthetic_images, write_idx

RECIPE: dict[str, Any] = {
    "name": "tiny",
    "seed": 7,
    "data": {"split": {"validation": 0.2, "test": 0.2}},
    "model": {"family": "cnn", "filters": [4], "dense": [8], "dropout": 0.0},
    "train": {"epochs": 1, "batch_size": 32, "optimizer": {"learning_rate": 0.01}},
    "tune": {"num_trials": 1, "space": {"model.dropout": {"uniform": [0.0, 0.3]}}},
}


@functools.cache
def trained() -> Path:
    """A project with a prepared dataset and one finished run, built once per session."""
    root = Path(tempfile.mkdtemp(prefix="dltrain-faults-"))
    raw = root / "raw"
    raw.mkdir()
    for prefix, num, seed in (("train", 240, 1), ("t10k", 60, 2)):
        images, labels = synthetic_images(num, seed=seed)
        write_idx(raw / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte.gz", labels)
    # The source stays here, read by every copy: a prepared dataset is tied to its source's path.
    recipe = {**RECIPE, "data": {**RECIPE["data"], "source": str(raw)}}
    (root / "dltrain.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    previous = Path.cwd()
    os.chdir(root)
    try:
        for command in ("prepare", "train"):
            code, _, err = invoke(command)
            assert code == 0, err
    finally:
        os.chdir(previous)
    return root


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "project"
    shutil.copytree(trained(), path)
    monkeypatch.chdir(path)
    return path


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder`` with its size and modification time."""
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in folder.rglob("*")
        if p.is_file()
    }


def temporaries(folder: Path) -> list[Path]:
    """dltrain's temporaries anywhere under ``folder``."""
    return [p for p in folder.rglob(".*") if ".partial-" in p.name or ".old-" in p.name]


def assert_reported(code: int, err: str, *needles: str) -> None:
    """Exit 2 with one paragraph holding every needle, and no traceback."""
    assert code == 2, err
    assert "Traceback" not in err and "internal error" not in err, err
    for needle in needles:
        assert needle in err, f"{needle!r} not in: {err}"


# --- read-only ------------------------------------------------------------------------------------


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[str]:
    """Make ``path`` unwritable for this process; yields the cause the message will give."""
    if os.geteuid() == 0:  # root writes whatever the modes say: a read-only mount stops it
        mounted = subprocess.run(["mount", "--bind", str(path), str(path)], capture_output=True)
        if mounted.returncode != 0:
            pytest.skip(f"running as root without the right to mount: {mounted.stderr.strip()}")
        try:
            subprocess.run(["mount", "-o", "remount,ro,bind", str(path)], check=True)
            yield "read-only"
        finally:
            # lazily: the study database may still be open in this process
            subprocess.run(["umount", "-l", str(path)], check=True)
        return
    modes = {p: p.stat().st_mode for p in [path, *path.rglob("*")]}
    for p, mode in modes.items():
        p.chmod(mode & ~0o222)
    try:
        yield "permission denied"
    finally:
        for p, mode in reversed(modes.items()):
            p.chmod(mode)


@pytest.mark.parametrize(
    "args",
    [
        ["prepare", "--force"],
        ["train"],
        ["tune"],
        ["evaluate"],
        ["export", "-f", "tflite"],
    ],
)
def test_a_read_only_project_is_named_with_its_cause(project: Path, args: list[str]) -> None:
    before = snapshot(project)
    with read_only(project) as cause:
        code, out, err = invoke(*args)
    assert_reported(code, err, "file system error", str(project), cause)
    assert out == ""
    assert snapshot(project) == before  # nothing written, nothing half-written


# --- a full disk ----------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 8 MiB tmpfs, when this process may mount one."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root); the injected ENOSPC test runs")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)


def fill(disk: Path, leave: int) -> None:
    """Fill ``disk`` until about ``leave`` bytes are free."""
    stats = os.statvfs(disk)
    # unbuffered: nothing is left to flush (and fail) when the file is closed
    with (disk / "filler").open("wb", buffering=0) as handle, contextlib.suppress(OSError):
        handle.write(b"\0" * max(0, stats.f_bavail * stats.f_frsize - leave))


@pytest.mark.parametrize("leave", [0, 24 * 1024, 64 * 1024, 192 * 1024])
def test_a_full_disk_fails_training_cleanly(
    small_disk: Path, monkeypatch: pytest.MonkeyPatch, leave: int
) -> None:
    """Whichever file the disk fills at (run.json, a TensorBoard event file, a checkpoint, the
    model), train says which and why, and the run it leaves is not taken for a finished one."""
    project = small_disk / "project"
    shutil.copytree(trained(), project)
    monkeypatch.chdir(project)
    finished = sorted((project / "runs" / "tiny").iterdir())
    fill(small_disk, leave)
    code, _, err = invoke("train")
    assert_reported(code, err, "file system error", str(project), "no space left on the device")
    assert not temporaries(project)
    code, out, err = invoke("evaluate", "--json")  # the latest *finished* run: the old one
    assert code == 2 or str(finished[-1]) in out, err  # a full disk may stop evaluate too
    if code == 2:
        assert_reported(code, err, "no space left on the device")


def test_a_full_disk_keeps_the_prepared_dataset(
    small_disk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = small_disk / "project"
    shutil.copytree(trained(), project)
    monkeypatch.chdir(project)
    data = snapshot(project / "data")
    fill(small_disk, 8 * 1024)
    code, _, err = invoke("prepare", "--force")
    assert_reported(code, err, f"Cannot write {project / 'data' / 'tiny'}", "no space left")
    assert "Nothing half-written was kept" in err
    assert snapshot(project / "data") == data and not temporaries(project)


def test_an_injected_enospc_at_the_atomic_writer_keeps_the_old_dataset(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No mount needed: the disk fills as prepare writes the new manifest."""
    import dltrain.runs

    real_fsync = os.fsync

    def full_at_the_manifest(fd: int) -> None:
        if "/.manifest.partial-" in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    data = snapshot(project / "data")
    with monkeypatch.context() as patch:
        patch.setattr(dltrain.runs.os, "fsync", full_at_the_manifest)
        code, out, err = invoke("prepare", "--force")
    assert_reported(code, err, f"Cannot write {project / 'data' / 'tiny'}", "errno 28, ENOSPC")
    assert out == ""
    assert snapshot(project / "data") == data and not temporaries(project)
    code, _, err = invoke("train", "--dry-run")  # the old dataset is whole and still read
    assert code == 0, err


# --- the study database ---------------------------------------------------------------------------


def test_an_unwritable_study_database_is_named(project: Path) -> None:
    import optuna

    database = project / "runs" / "tiny" / "tune" / "study.db"
    database.parent.mkdir(parents=True)
    optuna.create_study(storage=f"sqlite:///{database}", study_name="another")
    with read_only(database):
        code, out, err = invoke("tune", "--json")
    assert_reported(
        code, err, f"Cannot write the study database {database}", "readonly database", "--storage"
    )
    assert out == ""
