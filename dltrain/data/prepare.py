"""Raw data → a split, described, checksummed prepared dataset that training can trust."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import train_test_split

from dltrain import __version__
from dltrain.data.sources import SourceArrays, read_source
from dltrain.data.store import (
    MANIFEST_FILE,
    MANIFEST_VERSION,
    PreparedDataset,
    fingerprint_files,
    open_store,
    write_store,
)
from dltrain.errors import DataError
from dltrain.recipe.schema import DataSpec, Scaling


@dataclass(frozen=True)
class PrepareResult:
    dataset: PreparedDataset
    up_to_date: bool  # True when nothing was rebuilt


def data_spec_digest(spec: DataSpec, seed: int) -> str:
    """Digest of everything in the recipe that shapes the prepared data (the seed picks splits)."""
    payload = {"data": spec.model_dump(mode="json"), "seed": seed}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def prepare(spec: DataSpec, seed: int, folder: Path, *, force: bool = False) -> PrepareResult:
    """Read, split and store a dataset as ``spec`` says; a no-op when nothing changed.

    Args:
        spec: the recipe's data section (``source`` already an absolute path).
        seed: the recipe's seed, which fixes the splits.
        folder: where the prepared dataset lives (``data/<recipe>/``).
        force: rebuild even when source and recipe are unchanged.

    Raises:
        DataError: the source cannot be read or split as asked.
    """
    source = read_source(spec.source, spec.format)
    fingerprint = fingerprint_files(source.files)
    digest = data_spec_digest(spec, seed)
    if not force and (folder / MANIFEST_FILE).is_file():
        try:
            existing = open_store(folder)
        except DataError:
            existing = None
        if (
            existing is not None
            and existing.manifest["source"]["fingerprint"] == fingerprint["fingerprint"]
            and existing.manifest["data_spec_digest"] == digest
        ):
            return PrepareResult(dataset=existing, up_to_date=True)

    classes = _class_names(source, spec)
    splits = split_source(source, spec, seed, classes)
    images = splits["train"][0]
    manifest: dict[str, Any] = {
        "manifest_version": MANIFEST_VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "dltrain_version": __version__,
        "task": "multiclass" if len(classes) > 2 else "binary",
        "source": {"path": str(spec.source), "format": source.format.value, **fingerprint},
        "data_spec_digest": digest,
        "seed": seed,
        "features": {
            "kind": "image",
            "shape": list(images.shape[1:]),
            "dtype": str(images.dtype),
        },
        "target": {"classes": classes, "num_classes": len(classes)},
        "preprocessing": {"scaling": spec.scaling.value, **scaling_stats(images, spec.scaling)},
        "source_splits": sorted(source.splits),
    }
    write_store(folder, splits, manifest)
    return PrepareResult(dataset=open_store(folder), up_to_date=False)


def _class_names(source: SourceArrays, spec: DataSpec) -> list[str]:
    labels = np.concatenate([y for _, y in source.splits.values()])
    low, high = int(labels.min()), int(labels.max())
    if low < 0:
        raise DataError(
            f"Labels in {spec.source} go down to {low}. Expected class indices 0, 1, 2, …; "
            f"relabel the data."
        )
    if spec.classes is not None:
        if high >= len(spec.classes):
            raise DataError(
                f"`data.classes` names {len(spec.classes)} classes but {spec.source} has label "
                f"{high}. Name every class, in label order."
            )
        return list(spec.classes)
    return [str(i) for i in range(high + 1)]


def split_source(
    source: SourceArrays, spec: DataSpec, seed: int, classes: list[str]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Split into train/validation/test: seeded, stratified, keeping a source's own test set.

    Image arrays get a channel axis when they have none, so every model sees (H, W, C).
    """
    pool_x, pool_y = source.splits["train"]
    # Shares are of the whole pool, so validation 0.1 and test 0.1 give exactly 80/10/10.
    num_validation = max(1, round(spec.split.validation * len(pool_x)))
    if source.has_test:
        test = source.splits["test"]
    else:
        num_test = max(1, round(spec.split.test * len(pool_x)))
        pool_x, test_x, pool_y, test_y = _split(pool_x, pool_y, num_test, seed, spec, classes)
        test = (test_x, test_y)
    train_x, val_x, train_y, val_y = _split(pool_x, pool_y, num_validation, seed + 1, spec, classes)
    splits = {"train": (train_x, train_y), "validation": (val_x, val_y), "test": test}
    return {name: (_with_channels(x), y) for name, (x, y) in splits.items()}


def _split(
    x: np.ndarray, y: np.ndarray, count: int, seed: int, spec: DataSpec, classes: list[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    stratify = y if spec.split.stratify else None
    if stratify is not None:
        counts = np.bincount(y, minlength=len(classes))
        rare = [classes[i] for i, c in enumerate(counts) if c == 1]
        if rare:
            raise DataError(
                f"Cannot stratify the split of {spec.source}: class(es) {', '.join(rare)} have a "
                f"single example, which cannot be in two splits. Add examples, drop the class, or "
                f"set `data.split.stratify: false`."
            )
    try:
        parts = train_test_split(x, y, test_size=count, random_state=seed, stratify=stratify)
    except ValueError as exc:
        raise DataError(
            f"Cannot hold out {count} of {len(x)} examples of {spec.source}: {exc}. "
            f"Use more data or a different `data.split` share."
        ) from None
    return parts[0], parts[1], parts[2], parts[3]


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
