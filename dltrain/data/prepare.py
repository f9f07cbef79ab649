"""Raw data → a profiled, cleaned, split, checksummed prepared dataset that training can trust.

``prepare`` picks the path by source (``data/preparation/``): tables (``table/``), time series
(``series.py``), or arrays held in memory (IDX, ``.npz``, image and text class folders,
``arrays.py``). Every path writes into a temporary folder that replaces ``data/<recipe>/`` only
once complete, with ``manifest.json`` and ``profile.json``.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, TypeVar, cast

from dltrain import __version__
from dltrain.atomic import atomic_path, read_json, remove_stale_partials, write_json_atomic
from dltrain.data.readers.formats import detect_format, holds_dltrain_outputs, resolve_source
from dltrain.data.store import (
    PROFILE_FILE,
    PreparedDataset,
    fingerprint_source,
    open_store,
)
from dltrain.errors import DataError, DataQualityError
from dltrain.faults import crash_point
from dltrain.manifest import Manifest, Source
from dltrain.recipe.data import DataFormat, DataSpec
from dltrain.runs import MANIFEST_FILE
from dltrain.tasks import Task

TABLE_FORMATS = (DataFormat.CSV, DataFormat.PARQUET)
T = TypeVar("T")


@dataclass(frozen=True)
class PrepareResult:
    dataset: PreparedDataset
    up_to_date: bool  # True when nothing was rebuilt
    profile: dict[str, Any]


def data_spec_digest(spec: DataSpec, seed: int) -> str:
    """Digest of everything in the recipe that shapes the prepared data (the seed picks splits)."""
    data = spec.model_dump(mode="json")
    if data.get("shard_rows") is None:  # unset: the digest datasets prepared before it had
        data.pop("shard_rows", None)
    if data.get("target_transform") == "none":  # likewise for datasets prepared before it
        data.pop("target_transform", None)
    if data["text"].get("bag", 0) is None:  # likewise for text prepared before data.text.bag
        data["text"].pop("bag")
    payload = {"data": data, "seed": seed}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def prepare(
    spec: DataSpec, seed: int, folder: Path, *, force: bool = False, strict: bool = False
) -> PrepareResult:
    """Read, profile, clean, split and store a dataset as ``spec`` says; a no-op when nothing
    changed.

    Args:
        spec: the recipe's data section (``source`` already an absolute path).
        seed: the recipe's seed, which fixes the splits.
        folder: where the prepared dataset lives (``data/<recipe>/``).
        force: rebuild even when source and recipe are unchanged.
        strict: fail (exit 1) on any profile warning, not only on the recipe's ``checks``.

    Raises:
        DataError: the source cannot be read, cleaned or split as asked (exit 2).
        DataQualityError: the data failed a check (exit 1); nothing is written.
    """
    # A prepare of this recipe that was killed mid-build left its half-built folder beside it.
    remove_stale_partials(folder.parent, [folder.name])
    source = resolve_source(spec.source)
    fmt = detect_format(source) if spec.format == DataFormat.AUTO else spec.format
    files = source_files(source, spec, fmt)
    digest = data_spec_digest(spec, seed)
    fingerprint: Source | _InBackground[Source]
    if not force and (folder / MANIFEST_FILE).is_file():
        # Needed now: it decides whether to rebuild.
        fingerprint = fingerprint_source(source, fmt, files)
        existing = _existing(folder)
        if (
            existing is not None
            and existing.manifest.source.fingerprint == fingerprint.fingerprint
            and existing.manifest.data_spec_digest == digest
        ):
            profile = _read_profile(folder)
            if strict and profile.get("warnings"):
                raise DataQualityError(
                    f"The prepared dataset {folder} is up to date, but its profile has warnings "
                    f"that --strict refuses: {'; '.join(profile['warnings'])}. Fix the data or "
                    f"run without --strict.",
                    profile,
                )
            return PrepareResult(dataset=existing, up_to_date=True, profile=profile)
    else:
        # Only the manifest needs it: hash the files on another thread (hashlib releases the
        # GIL) while the build reads them, rather than reading every byte once more up front.
        fingerprint = _InBackground(fingerprint_source, source, fmt, files)
    resolved = spec.model_copy(update={"source": source})
    created = [p for p in (folder.parent, folder.parent.parent) if not p.exists()]
    try:
        profile = _build(resolved, seed, folder, fmt, strict=strict, identity=(fingerprint, digest))
    except BaseException:
        for parent in created:  # leave no empty data/ behind a failed first prepare
            if parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()
        raise
    return PrepareResult(dataset=open_store(folder), up_to_date=False, profile=profile)


def _build(
    spec: DataSpec,
    seed: int,
    folder: Path,
    fmt: DataFormat,
    *,
    strict: bool,
    identity: tuple[Source | _InBackground[Source], str],
) -> dict[str, Any]:
    """Prepare into a temporary folder that replaces ``folder`` when complete; the profile."""
    pending, digest = identity
    with atomic_path(folder) as tmp:
        tmp.mkdir(parents=True)
        if fmt in TABLE_FORMATS and (spec.series is not None or spec.task == Task.FORECASTING):
            from dltrain.data.preparation.series import prepare_series

            outcome = prepare_series(spec, seed, tmp)
        elif fmt in TABLE_FORMATS:
            from dltrain.data.preparation.table import prepare_table

            outcome = prepare_table(spec, seed, tmp, strict=strict)
        else:
            from dltrain.data.preparation.arrays import prepare_arrays

            outcome = prepare_arrays(spec, seed, tmp, fmt, strict=strict)
        source = pending.result() if isinstance(pending, _InBackground) else pending
        # The description's parts were validated as they were built; its fields go in as they
        # are (not dumped and re-read), and the manifest's own checks run once more on the whole.
        manifest = Manifest(
            created=datetime.now(UTC).isoformat(timespec="seconds"),
            dltrain_version=__version__,
            source=source,
            data_spec_digest=digest,
            seed=seed,
            **dict(outcome.description),
        )
        profile_json = outcome.profile.to_json()
        write_json_atomic(tmp / PROFILE_FILE, profile_json)
        write_json_atomic(tmp / MANIFEST_FILE, manifest.to_json())
        crash_point("prepare.manifest")
    return profile_json


class _InBackground(Generic[T]):
    """``function(*args)`` computed on a daemon thread (an interrupted prepare does not wait
    for it); ``result()`` waits and returns it, or raises what it raised."""

    def __init__(self, function: Callable[..., T], *args: Any) -> None:
        self._value: T | None = None
        self._error: BaseException | None = None

        def run() -> None:
            try:
                self._value = function(*args)
            except BaseException as exc:  # handed to the caller of result()
                self._error = exc

        self._thread = threading.Thread(target=run, name="dltrain-fingerprint", daemon=True)
        self._thread.start()

    def result(self) -> T:
        """The function's return value.

        Raises:
            BaseException: whatever the function raised.
        """
        self._thread.join()
        if self._error is not None:
            raise self._error
        return cast(T, self._value)  # set: the function returned


def _existing(folder: Path) -> PreparedDataset | None:
    try:
        return open_store(folder)
    except DataError:
        return None


def _read_profile(folder: Path) -> dict[str, Any]:
    try:
        profile: dict[str, Any] = read_json(folder / PROFILE_FILE)
        return profile
    except (OSError, ValueError):
        return {}


def source_files(source: Path, spec: DataSpec, fmt: DataFormat) -> list[Path]:
    """The files a prepared dataset depends on, for its fingerprint: the source file (and its
    test file), or every file under a source folder."""
    if source.is_file():
        files = [source]
        if spec.test_source is not None:
            test = spec.test_source.path.expanduser()
            files.append(test if test.is_absolute() else (source.parent / test).resolve())
        return [f for f in files if f.is_file()] or files
    outputs = [p for p in source.iterdir() if p.is_dir() and holds_dltrain_outputs(p)]
    return sorted(
        p
        for p in source.rglob("*")
        if p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(source).parts)
        and not any(p.is_relative_to(output) for output in outputs)
    )
