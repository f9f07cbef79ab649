"""The corpus's one way to run a bad input and judge the answer.

A ``Case`` is a command line, what to put on disk first, and what the error must say. ``check``
runs it in-process against a private copy of a fixture project and asserts the four properties
the hardening issue (#12) asks of every bad input:

1. the exit code (2 for bad input or usage, unless the case says otherwise);
2. stderr names the offending input (a path, key, column or value) and says what to do;
3. no traceback and no "internal error";
4. every file that was on disk before the command is still there with the same checksum (the
   source data, an earlier prepared dataset, an earlier run, an earlier output), and the failed
   command left no new file behind that a later command could mistake for a result.

A case whose fix belongs to another engineer's area carries ``owner``; it becomes a strict
xfail, so it turns into a failure (to be promoted) the day it is fixed.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import shutil
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import invoke

Setup = Callable[[Path], object]


@dataclass(frozen=True)
class Case:
    """One bad input: the command line, the files it needs, and what the error must say.

    ``names`` are the words that identify the input (file name, key, column, value); ``fix``
    the words of the remedy. Both are matched against stderr with whitespace collapsed.
    """

    id: str
    args: tuple[str, ...]
    names: tuple[str, ...]
    fix: tuple[str, ...]
    setup: Setup | tuple[Setup, ...] = ()
    exit_code: int = 2
    may_write: tuple[str, ...] = ()  # glob patterns (relative paths) a failure may leave behind
    owner: str | None = None  # "owned by <area>: <what fails>" makes the case a strict xfail

    def __post_init__(self) -> None:
        # a case that checks no words would pass on any message
        assert self.names and self.fix, f"{self.id}: say what the error names and its fix"

    def param(self) -> Any:
        marks = [pytest.mark.xfail(strict=True, reason=self.owner)] if self.owner else []
        return pytest.param(self, id=self.id, marks=marks)


def case(
    id: str,
    args: str | Iterable[str],
    names: str | Iterable[str],
    fix: str | Iterable[str],
    *setup: Setup,
    **options: Any,
) -> Case:
    """A ``Case`` from plain arguments: a string is one word (or, for ``args``, split on spaces)."""
    return Case(
        id=id,
        args=tuple(args.split()) if isinstance(args, str) else tuple(args),
        names=(names,) if isinstance(names, str) else tuple(names),
        fix=(fix,) if isinstance(fix, str) else tuple(fix),
        setup=setup,
        **options,
    )


def params(cases: Iterable[Case]) -> list[Any]:
    """pytest parameters of ``cases``, refusing two cases with one id (a copy-paste slip)."""
    listed = list(cases)
    ids = [c.id for c in listed]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    assert not repeated, f"case ids used twice: {repeated}"
    return [c.param() for c in listed]


def checksums(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root``, by relative path."""
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def flat(text: str) -> str:
    """Whitespace and the command line parser's box drawing collapsed, so a message wrapped by
    the console still matches a phrase."""
    return " ".join(text.translate(str.maketrans("│╭╮╰╯─", "      ")).split())


def check(item: Case, project: Path) -> None:
    """Run ``item`` in ``project`` and assert the corpus's four properties."""
    steps = item.setup if isinstance(item.setup, tuple) else (item.setup,)
    for step in steps:
        step(project)
    before = checksums(project)
    with contextlib.chdir(project):
        code, out, err = invoke(*item.args)
    said = flat(err)
    assert code == item.exit_code, f"exit {code}, expected {item.exit_code}: {err}"
    assert "Traceback" not in err and "internal error" not in err, err
    for needle in (*item.names, *item.fix):
        assert flat(needle) in said, f"{needle!r} not in: {err}"
    after = checksums(project)
    damaged = sorted(p for p, digest in before.items() if after.get(p) != digest)
    assert not damaged, f"changed or removed by a failed command: {damaged}"
    added = sorted(
        p
        for p in set(after) - set(before)
        if not any(fnmatch.fnmatch(p, pattern) for pattern in item.may_write)
    )
    assert not added, f"left behind by a failed command: {added}"


# --- writing inputs --------------------------------------------------------------------------


def write(name: str, content: str | bytes | Callable[[Path], object]) -> Setup:
    """A setup step writing ``name`` (text, bytes, or a function of the path)."""

    def step(project: Path) -> None:
        path = project / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if callable(content):
            content(path)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)

    return step


def recipe(data: dict[str, Any], model: dict[str, Any] | None = None, **sections: Any) -> Setup:
    """A setup step writing dltrain.yaml: recipe ``bad`` (the name of the fixture's prepared
    dataset, so a failed prepare must leave that dataset as it was)."""
    document: dict[str, Any] = {
        "name": "bad",
        "seed": 1,
        "data": data,
        "model": model or {"family": "mlp", "units": [4], "dropout": 0.0},
        "train": {"epochs": 1, "batch_size": 16},
        **sections,
    }
    return write("dltrain.yaml", yaml.safe_dump(document, sort_keys=False))


def rewrite_paths(project: Path, template: Path) -> None:
    """Point a copied project's run records at the copy, as if the project had been moved, so
    its runs read the copy's prepared data rather than the template's."""
    for path in project.glob("runs/*/*/run.json"):
        path.write_text(path.read_text().replace(str(template), str(project)))


def run_folder(project: Path, recipe_name: str = "tiny", index: int = -1) -> Path:
    """A run folder of ``recipe_name`` in ``project`` (the latest by default)."""
    return sorted(p for p in (project / "runs" / recipe_name).iterdir() if p.is_dir())[index]


def prepare(id: str, names: Any, fix: Any, setup: tuple[Setup, ...], **options: Any) -> Case:
    """A case of `dltrain prepare`, with its setup steps as one tuple."""
    return case(id, "prepare", names, fix, *setup, **options)


# --- damaging a copied project's runs and prepared data -----------------------------------------


def in_run(name: str, content: str | bytes, recipe_name: str = "tiny") -> Setup:
    """A setup step replacing file ``name`` of the recipe's latest run."""

    def step(project: Path) -> None:
        path = run_folder(project, recipe_name) / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())

    return step


def other_version(*patterns: str) -> Setup:
    """A setup step stamping manifest.json files with a manifest version that does not exist."""

    def step(project: Path) -> None:
        for pattern in patterns:
            for path in project.glob(pattern):
                document = json.loads(path.read_text())
                path.write_text(json.dumps({**document, "version": 999}))

    return step


def model_of(recipe_name: str) -> Setup:
    """A setup step putting another recipe's model.keras into the latest tiny run."""

    def step(project: Path) -> None:
        source = run_folder(project, recipe_name) / "model.keras"
        (run_folder(project) / "model.keras").write_bytes(source.read_bytes())

    return step


def model_without_config(project: Path) -> None:
    """The latest tiny run's model.keras replaced by a zip archive holding no model."""
    with zipfile.ZipFile(run_folder(project) / "model.keras", "w") as archive:
        archive.writestr("notes.txt", "no model here")


RUN_ID = "20990101-000000-zzzz"  # later than any real run id, as ids sort by time


def copy_run(recipe_name: str = "tiny") -> Setup:
    """A setup step copying the recipe's latest run to runs/<recipe>/RUN_ID, so a case can name
    that run's files on its command line."""

    def step(project: Path) -> None:
        shutil.copytree(run_folder(project, recipe_name), project / "runs" / recipe_name / RUN_ID)

    return step
