"""Faults of the machine (#12): a read-only folder, a full disk, an unwritable study database
end in exit 2 naming the path and the cause, with nothing half-written left that a later command
would trust; what a killed command left half-written, the next run of that command removes.

Read-only: as root (who ignores file modes) a read-only bind mount, else the write bits taken
off. A full disk: a small tmpfs when this process may mount one, and everywhere an ENOSPC raised
at the atomic writer's own write. Killed commands: the real command in its own process, killed
with SIGKILL by a patch at the moment its temporary is written.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from dltrain.atomic import HOST_TAG
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
    import dltrain.atomic

    real_fsync = os.fsync

    def full_at_the_manifest(fd: int) -> None:
        if "/.manifest.partial-" in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    data = snapshot(project / "data")
    with monkeypatch.context() as patch:
        patch.setattr(dltrain.atomic.os, "fsync", full_at_the_manifest)
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


# --- killed commands ------------------------------------------------------------------------------

# `python -c KILLER ARGS` runs `dltrain ARGS`, killed by SIGKILL right after it writes a
# temporary: what the kernel's OOM killer or a power cut leaves.
KILLER = """
import os, signal, sys

def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)

when = sys.argv.pop(1)
if when == "prepare":
    import dltrain.data.prepare as prepare
    write = prepare.write_json_atomic
    def write_then_die(path, document):
        write(path, document)
        if path.name == "manifest.json":
            die()
    prepare.write_json_atomic = write_then_die
elif when == "train":
    import keras
    save = keras.Model.save
    def save_then_die(self, path, *args, **kwargs):
        save(self, path, *args, **kwargs)
        if ".model.partial-" in str(path):
            die()
    keras.Model.save = save_then_die
elif when == "export":
    import dltrain.evaluation.export as export
    writer = export.WRITERS[export.ExportFormat.SAVED_MODEL]
    def write_then_die(model, path):
        writer(model, path)
        die()
    export.WRITERS[export.ExportFormat.SAVED_MODEL] = write_then_die
from dltrain.cli import main
sys.argv = ["dltrain", *sys.argv[1:]]
main()
"""


def killed(when: str, *args: str) -> list[Path]:
    """Run ``dltrain ARGS`` until it has written its temporary, then kill it; what it left."""
    done = subprocess.run(
        [sys.executable, "-c", KILLER, when, *args], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    left = temporaries(Path.cwd())
    assert left, "the killed command left no temporary: nothing to test"
    return left


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def plant_foreign(folder: Path, name: str, suffix: str = "") -> list[Path]:
    """Temporaries beside ``name`` that are not this command's to delete: another target's
    whose writer is dead, one of a live writer, another machine's, and a user's own file."""
    other_host = "000000" if HOST_TAG != "000000" else "111111"
    dead = dead_pid()
    planted = [
        folder / f".other.partial-{HOST_TAG}-{dead}-abcdef{suffix}",
        folder / f".{name}.partial-{HOST_TAG}-{os.getpid()}-abcdef{suffix}",
        folder / f".{name}.partial-{other_host}-{dead}-abcdef{suffix}",
        folder / f".{name}.partial-notes{suffix}",
    ]
    for path in planted:
        path.write_text("not yours")
    return planted


@pytest.mark.slow
def test_the_next_prepare_removes_what_a_killed_prepare_left(project: Path) -> None:
    before = (project / "data" / "tiny" / "manifest.json").read_bytes()
    (left,) = killed("prepare", "prepare", "--force")
    assert left.parent == project / "data" and left.name.startswith(".tiny.partial-")
    assert (left / "manifest.json").is_file()  # a whole-looking dataset, under its temporary name
    assert (project / "data" / "tiny" / "manifest.json").read_bytes() == before
    foreign = plant_foreign(project / "data", "tiny")
    code, _, err = invoke("prepare")
    assert code == 0, err
    assert not left.exists()
    assert all(p.exists() for p in foreign)


@pytest.mark.slow
def test_the_next_train_removes_what_a_killed_train_left(project: Path) -> None:
    (left,) = killed("train", "train")
    assert left.name.startswith(".model.partial-") and left.suffix == ".keras"
    run = left.parent
    assert not (run / "model.keras").exists()  # never taken for a finished run
    foreign = plant_foreign(run, "model", ".keras") + [
        run / f".metrics.partial-{HOST_TAG}-{dead_pid()}-abcdef.json"  # evaluate's, not train's
    ]
    foreign[-1].write_text("evaluate's")
    code, _, err = invoke("train")
    assert code == 0, err
    assert not left.exists()
    assert all(p.exists() for p in foreign)


@pytest.mark.slow
def test_the_next_export_removes_what_a_killed_export_left(project: Path) -> None:
    (left,) = killed("export", "export", "-f", "saved_model")
    assert left.name.startswith(".saved_model.partial-") and left.is_dir()
    foreign = plant_foreign(left.parent.parent, "model", ".keras")  # train's, in the run folder
    code, _, err = invoke("export", "-f", "saved_model")
    assert code == 0, err
    assert not left.exists() and (left.parent / "saved_model").is_dir()
    assert all(p.exists() for p in foreign)


class ResourceExhaustedError(Exception):
    """Named as TensorFlow's: the boundary knows it by name, without importing TensorFlow."""


def test_tensorflows_out_of_memory_names_the_tensor_and_the_fixes() -> None:
    import io

    import typer
    from rich.console import Console

    from dltrain.cli.common import reported_errors

    message = (
        "Graph execution error:\n\nDetected at node cnn_1/block1_conv1/convolution defined at "
        "(most recent call last):\n  File fit.py\nOOM when allocating tensor with "
        "shape[128,32,28,28] and type float on /job:localhost/replica:0/task:0/device:CPU:0 "
        "by allocator cpu\n\t [[{{node cnn_1/block1_conv1/convolution}}]]"
    )
    out = io.StringIO()
    with pytest.raises(typer.Exit) as stopped, reported_errors(Console(file=out, width=400)):
        raise ResourceExhaustedError(message)
    said = out.getvalue()
    assert stopped.value.exit_code == 2
    assert "out of memory" in said and "internal error" not in said
    assert "(OOM when allocating tensor with shape[128,32,28,28] and type float)" in said
    assert "train.batch_size" in said and "train.input: stream" in said
