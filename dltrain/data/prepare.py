"""Raw data → a profiled, cleaned, split, checksummed prepared dataset that training can trust.

``prepare`` picks the path by source: tables (``tabular.py``), time series (``timeseries.py``),
or arrays held in memory (IDX, ``.npz``, image and text class folders, here). Every path writes
into a temporary folder that replaces ``data/<recipe>/`` only once complete, with
``manifest.json`` and ``profile.json``.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from dltrain import __version__
from dltrain.data.hashing import hash_strings
from dltrain.data.preparation.quality import DataQualityError
from dltrain.data.profile import Profile
from dltrain.data.sources import SourceArrays, detect_format, read_source, resolve_source
from dltrain.data.splits import (
    SPLIT_NAMES,
    SplitRequest,
    leaking_counts,
    resolve_method,
    split_indices,
)
from dltrain.data.store import (
    MANIFEST_FILE,
    MANIFEST_VERSION,
    PROFILE_FILE,
    PreparedDataset,
    ShardWriter,
    fingerprint_files,
    open_store,
)
from dltrain.data.transforms import class_weights
from dltrain.errors import DataError
from dltrain.recipe.data import DataFormat, DataSpec, Scaling, SplitMethod
from dltrain.runs import atomic_path, read_json, write_json_atomic
from dltrain.tasks import Task

TABLE_FORMATS = (DataFormat.CSV, DataFormat.PARQUET)


@dataclass(frozen=True)
class PrepareResult:
    dataset: PreparedDataset
    up_to_date: bool  # True when nothing was rebuilt
    profile: dict[str, Any]


def data_spec_digest(spec: DataSpec, seed: int) -> str:
    """Digest of everything in the recipe that shapes the prepared data (the seed picks splits)."""
    payload = {"data": spec.model_dump(mode="json"), "seed": seed}
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
    source = resolve_source(spec.source)
    fmt = detect_format(source) if spec.format == DataFormat.AUTO else spec.format
    files = source_files(source, spec, fmt)
    digest = data_spec_digest(spec, seed)
    fingerprint: dict[str, Any] | _InBackground
    if not force and (folder / MANIFEST_FILE).is_file():
        fingerprint = fingerprint_files(files)  # needed now: it decides whether to rebuild
        existing = _existing(folder)
        if (
            existing is not None
            and existing.manifest["source"]["fingerprint"] == fingerprint["fingerprint"]
            and existing.manifest["data_spec_digest"] == digest
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
        fingerprint = _InBackground(fingerprint_files, files)
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
    identity: tuple[dict[str, Any] | _InBackground, str],
) -> dict[str, Any]:
    """Prepare into a temporary folder that replaces ``folder`` when complete; the profile."""
    pending, digest = identity
    source = spec.source
    with atomic_path(folder) as tmp:
        tmp.mkdir(parents=True)
        if fmt in TABLE_FORMATS and (spec.series is not None or spec.task == Task.FORECASTING):
            from dltrain.data.preparation.series import prepare_series

            outcome: Any = prepare_series(spec, seed, tmp)
        elif fmt in TABLE_FORMATS:
            from dltrain.data.preparation.table import prepare_table

            outcome = prepare_table(spec, seed, tmp, strict=strict)
        else:
            outcome = prepare_arrays(spec, seed, tmp, fmt, strict=strict)
        fields, profile = outcome.fields, outcome.profile
        fingerprint = pending.result() if isinstance(pending, _InBackground) else pending
        manifest: dict[str, Any] = {
            "manifest_version": MANIFEST_VERSION,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "dltrain_version": __version__,
            "task": fields.pop("task"),
            "source": {"path": str(source), "format": fmt.value, **fingerprint},
            "data_spec_digest": digest,
            "seed": seed,
            **fields,
        }
        profile_json = profile.to_json()
        write_json_atomic(tmp / PROFILE_FILE, profile_json)
        write_json_atomic(tmp / MANIFEST_FILE, manifest)
    return profile_json


class _InBackground:
    """``function(*args)`` computed on a daemon thread (an interrupted prepare does not wait
    for it); ``result()`` waits and returns it, or raises what it raised."""

    def __init__(self, function: Callable[..., Any], *args: Any) -> None:
        self._value: Any = None
        self._error: BaseException | None = None

        def run() -> None:
            try:
                self._value = function(*args)
            except BaseException as exc:  # handed to the caller of result()
                self._error = exc

        self._thread = threading.Thread(target=run, name="dltrain-fingerprint", daemon=True)
        self._thread.start()

    def result(self) -> Any:
        """The function's return value.

        Raises:
            BaseException: whatever the function raised.
        """
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value


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
    return sorted(
        p
        for p in source.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(source).parts)
    )


# --- arrays: IDX, npz, image and text folders ------------------------------------------------


@dataclass
class ArraysOutcome:
    fields: dict[str, Any]
    profile: Profile


def prepare_arrays(
    spec: DataSpec, seed: int, folder: Path, fmt: DataFormat, *, strict: bool = False
) -> ArraysOutcome:
    """Split and store a dataset that fits in memory (images, texts, IDX, npz).

    Raises:
        DataError: unreadable data, or settings that do not apply to it.
        DataQualityError: a check failed.
    """
    if spec.series is not None:
        raise DataError(
            f"`data.series` needs a table with a time column; {spec.source} is {fmt.value} data. "
            f"Remove the series section or point `data.source` at a CSV or Parquet file."
        )
    source = read_source(spec.source, fmt, spec.image)
    classes = _class_names(source, spec)
    method = resolve_method(spec.split, classification=True)
    if method not in (SplitMethod.RANDOM, SplitMethod.STRATIFIED):
        raise DataError(
            f"`data.split.method: {method.value}` needs a column to split by, which only tables "
            f"have; {spec.source} is {fmt.value} data. Use random or stratified."
        )
    pool_x, pool_y = source.splits["train"]
    request = SplitRequest(
        spec=spec.split,
        seed=seed,
        method=method,
        has_test=source.has_test,
        source=str(spec.source),
        labels=pool_y,
        class_names=classes,
    )
    train_rows, validation_rows, test_rows = split_indices(len(pool_y), request)
    splits = {
        "train": (pool_x[train_rows], pool_y[train_rows]),
        "validation": (pool_x[validation_rows], pool_y[validation_rows]),
        "test": source.splits["test"]
        if source.has_test
        else (pool_x[test_rows], pool_y[test_rows]),
    }
    is_text = pool_x.dtype == object
    profile = _array_profile(splits, classes, source, is_text)
    breaches = profile.breaches(spec.checks, strict=strict)
    if breaches:
        raise DataQualityError(
            f"{spec.source} failed {len(breaches)} data check(s): {'; '.join(breaches)}. Fix the "
            f"data, relax `data.checks` in the recipe, or run without --strict.",
            profile.to_json(),
        )
    writer = ShardWriter(folder, layout="parquet" if is_text else "npz", num_classes=len(classes))
    import pyarrow as pa

    for name in SPLIT_NAMES:
        x, y = splits[name]
        if is_text:
            writer.write(name, pa.table({"text": pa.array(x.tolist(), pa.string())}), y)
        else:
            writer.write(name, _with_channels(x), y)
    entries = writer.close()
    target = {
        "classes": classes,
        "num_classes": len(classes),
        "class_weights": class_weights(entries["train"]["class_counts"]),
    }
    fields: dict[str, Any] = {
        "task": (Task.MULTICLASS if len(classes) > 2 else Task.BINARY).value,
        "target": target,
        "splits": entries,
        "source_splits": sorted(source.splits),
        "cleaning": {
            "dropped_rows": {},
            "filled": [],
            "notes": source.notes,
            "duplicates": "reported",
        },
    }
    if is_text:
        from dltrain.data.text import fit_vocabulary

        vocabulary, length = fit_vocabulary(splits["train"][0].tolist(), spec.text)
        fields["features"] = {
            "kind": "text",
            "column": "text",
            "dtype": "string",
            "vocabulary_size": len(vocabulary) + 2,
            "sequence_length": length,
        }
        fields["preprocessing"] = {
            "vocabulary": vocabulary,
            "standardize": spec.text.standardize.value,
            "sequence_length": length,
            "sampling": spec.sampling.value,
        }
    else:
        images = _with_channels(splits["train"][0])
        fields["features"] = {
            "kind": "image",
            "shape": list(images.shape[1:]),
            "dtype": str(images.dtype),
        }
        fields["preprocessing"] = {
            "scaling": spec.scaling.value,
            **scaling_stats(images, spec.scaling),
            "sampling": spec.sampling.value,
        }
    return ArraysOutcome(fields=fields, profile=profile)


def _array_profile(
    splits: dict[str, tuple[np.ndarray, np.ndarray]],
    classes: list[str],
    source: SourceArrays,
    is_text: bool,
) -> Profile:
    hashes = {name: _example_hashes(x, is_text) for name, (x, _) in splits.items()}
    order = np.concatenate([np.full(len(h), i, np.int8) for i, h in enumerate(hashes.values())])
    every = np.concatenate(list(hashes.values()))
    duplicates = 0
    for h in hashes.values():
        duplicates += len(h) - len(np.unique(h))
    labels = np.concatenate([y for _, y in splits.values()])
    counts = np.bincount(labels, minlength=len(classes))
    return Profile(
        columns=[],
        rows=len(labels),
        duplicate_rows=duplicates,
        class_counts=dict(zip(classes, counts.tolist(), strict=True)),
        leaking_rows=leaking_counts(every, order),
        notes=list(source.notes),
        unit="text" if is_text else "image",
    )


def _example_hashes(x: np.ndarray, is_text: bool) -> np.ndarray:
    import pyarrow as pa

    if is_text:
        return hash_strings(pa.array(x.tolist(), pa.string()))
    flat = np.ascontiguousarray(x.reshape(len(x), -1))
    return np.array(
        [
            int.from_bytes(hashlib.blake2b(row.tobytes(), digest_size=8).digest(), "little")
            for row in flat
        ],
        dtype=np.uint64,
    )


def _class_names(source: SourceArrays, spec: DataSpec) -> list[str]:
    labels = np.concatenate([y for _, y in source.splits.values()])
    low, high = int(labels.min()), int(labels.max())
    if low < 0:
        raise DataError(
            f"Labels in {spec.source} go down to {low}. Expected class indices 0, 1, 2, …; "
            f"relabel the data."
        )
    names = source.class_names
    if spec.classes is not None:
        if high >= len(spec.classes) or (names is not None and len(names) != len(spec.classes)):
            raise DataError(
                f"`data.classes` names {len(spec.classes)} classes but {spec.source} has "
                f"{len(names) if names is not None else high + 1}. Name every class, in label "
                f"order."
            )
        return list(spec.classes)
    if names is not None:
        return list(names)
    return [str(i) for i in range(high + 1)]


def _with_channels(x: np.ndarray) -> np.ndarray:
    return x[..., np.newaxis] if x.ndim == 3 else x


def scaling_stats(train_x: np.ndarray, scaling: Scaling) -> dict[str, float]:
    """``scale`` and ``offset`` such that ``x * scale + offset`` is the scaled input.

    Fit on the training split only, so nothing about validation or test leaks into training.
    """
    if scaling == Scaling.NONE:
        return {"scale": 1.0, "offset": 0.0}
    if np.issubdtype(train_x.dtype, np.integer) and train_x.dtype.itemsize == 1:
        low, high = 0.0, 255.0  # 8-bit pixels: the range is the format's, not the sample's
    else:
        low, high = float(train_x.min()), float(train_x.max())
    if scaling == Scaling.STANDARD:
        mean = float(train_x.mean(dtype=np.float64))
        std = float(train_x.std(dtype=np.float64)) or 1.0
        return {"scale": 1.0 / std, "offset": -mean / std}
    span = (high - low) or 1.0
    if scaling == Scaling.UNIT:
        return {"scale": 1.0 / span, "offset": -low / span}
    return {"scale": 2.0 / span, "offset": -2.0 * low / span - 1.0}
