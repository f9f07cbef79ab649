"""Preparing a dataset that fits in memory: IDX, ``.npz`` and text class folders (image class
folders, which may not fit, are decoded a shard at a time by ``image_folders.py``, through the
splitting, profiling and scaling helpers here).

The source's examples are split (randomly or stratified; its own test set is kept as test),
profiled for duplicates and leakage, and stored as shards; images get their pixel scaling and
texts their vocabulary, fitted on the training split only.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pyarrow as pa

from dltrain.data.hashing import hash_strings
from dltrain.data.pixels import PixelRange, infer_pixel_range
from dltrain.data.preparation import Prepared
from dltrain.data.preparation.quality import check_quality
from dltrain.data.profile import Profile
from dltrain.data.readers.arrays import SourceArrays
from dltrain.data.readers.formats import read_source
from dltrain.data.splits import (
    SPLIT_NAMES,
    SplitRequest,
    leaking_counts,
    resolve_method,
    split_indices,
)
from dltrain.data.store import ShardLayout, ShardWriter
from dltrain.data.transforms import class_weights
from dltrain.errors import DataError
from dltrain.manifest import (
    ClassTarget,
    Cleaning,
    DatasetDescription,
    ImageFeatures,
    ImagePreprocessing,
    Split,
    TextFeatures,
    TextPreprocessing,
)
from dltrain.recipe.data import DataFormat, DataSpec, Scaling, SplitMethod, TargetTransform
from dltrain.tasks import MAX_CLASSES, Task

Splits = dict[str, tuple[np.ndarray, np.ndarray]]  # split name → (examples, labels)


def prepare_arrays(
    spec: DataSpec, seed: int, folder: Path, fmt: DataFormat, *, strict: bool = False
) -> Prepared:
    """Split and store a dataset that fits in memory (texts, IDX, npz), or image folders.

    Args:
        spec: the recipe's data section.
        seed: fixes the splits.
        folder: the (temporary) dataset folder the shards go to.
        fmt: the source's format (not ``auto``).
        strict: fail on any profile warning (``--strict``).

    Returns:
        The dataset's description and profile.

    Raises:
        DataError: unreadable data, or settings that do not apply to it.
        DataQualityError: a check failed.
    """
    if spec.series is not None:
        raise DataError(
            f"`data.series` needs a table with a time column; {spec.source} is {fmt.value} data. "
            f"Remove the series section or point `data.source` at a CSV or Parquet file."
        )
    if spec.target_transform != TargetTransform.NONE:
        raise DataError(
            f"`data.target_transform` is {spec.target_transform.value}, which transforms the "
            f"numeric target of a table (CSV or Parquet); {spec.source} is {fmt.value} data. "
            f"Remove `data.target_transform`."
        )
    if fmt == DataFormat.IMAGES and spec.source.is_dir():
        # decoded a shard at a time: an image set may be larger than memory
        from dltrain.data.preparation.image_folders import prepare_image_folders

        return prepare_image_folders(spec, seed, folder, strict=strict)
    source = read_source(spec.source, fmt, spec.image)
    labels = {name: y for name, (_, y) in source.splits.items()}
    classes = class_names_of(labels, source.class_names, spec)
    splits = _split(source, spec, seed, fmt, classes)
    is_text = source.splits["train"][0].dtype == object
    hashes = {name: _example_hashes(x, is_text) for name, (x, _) in splits.items()}
    profile = profile_of(
        hashes,
        {name: y for name, (_, y) in splits.items()},
        classes,
        source.notes,
        "text" if is_text else "image",
    )
    check_quality(profile, spec, strict=strict)
    writer = ShardWriter(
        folder,
        layout=ShardLayout.ARROW if is_text else ShardLayout.NPZ,
        num_classes=len(classes),
        rows_per_shard=spec.shard_rows,
    )
    for name in SPLIT_NAMES:
        x, y = splits[name]
        if is_text:
            writer.write(name, pa.table({"text": pa.array(x.tolist(), pa.string())}), y)
        else:
            writer.write(name, _with_channels(x), y)
    stored = writer.close()
    train_x = splits["train"][0]
    features: ImageFeatures | TextFeatures
    preprocessing: ImagePreprocessing | TextPreprocessing
    if is_text:
        features, preprocessing = _text_inputs(train_x, spec)
    else:
        features, preprocessing, note = _image_inputs(train_x, spec, fmt)
        profile.notes.append(note)
    description = class_dataset(
        classes, stored, (features, preprocessing), sorted(source.splits), source.notes
    )
    return Prepared(description=description, profile=profile)


def class_dataset(
    classes: list[str],
    stored: dict[str, Split],
    inputs: tuple[ImageFeatures | TextFeatures, ImagePreprocessing | TextPreprocessing],
    source_splits: list[str],
    notes: list[str],
) -> DatasetDescription:
    """The manifest's description of a stored class dataset (images or texts): binary or
    multiclass by the number of classes, class weights from the training split's counts."""
    counts = stored["train"].class_counts
    assert counts is not None  # the writer counts classes: it was given their number
    features, preprocessing = inputs
    return DatasetDescription(
        task=Task.MULTICLASS if len(classes) > 2 else Task.BINARY,
        features=features,
        target=ClassTarget(
            classes=classes, num_classes=len(classes), class_weights=class_weights(counts)
        ),
        preprocessing=preprocessing,
        splits=stored,
        source_splits=source_splits,
        cleaning=Cleaning(notes=notes),
    )


def _split(
    source: SourceArrays, spec: DataSpec, seed: int, fmt: DataFormat, classes: list[str]
) -> Splits:
    """Train, validation and test: held out of the source's training pool, the test split
    the source's own when it has one.

    Raises:
        DataError: a split method that needs a column, or a pool that cannot be split.
    """
    pool_x, pool_y = source.splits["train"]
    train_rows, validation_rows, test_rows = split_rows(
        pool_y, source.has_test, spec, seed, fmt, classes
    )
    return {
        "train": (pool_x[train_rows], pool_y[train_rows]),
        "validation": (pool_x[validation_rows], pool_y[validation_rows]),
        "test": source.splits["test"]
        if source.has_test
        else (pool_x[test_rows], pool_y[test_rows]),
    }


def split_rows(
    pool_y: np.ndarray,
    has_test: bool,
    spec: DataSpec,
    seed: int,
    fmt: DataFormat,
    classes: list[str],
) -> list[np.ndarray]:
    """The rows of the source's training pool that go to train, validation and test (none to
    test when the source has its own).

    Raises:
        DataError: a split method that needs a column, or a pool that cannot be split.
    """
    method = resolve_method(spec.split, classification=True)
    if method not in (SplitMethod.RANDOM, SplitMethod.STRATIFIED):
        raise DataError(
            f"`data.split.method: {method.value}` needs a column to split by, which only tables "
            f"have; {spec.source} is {fmt.value} data. Use random or stratified."
        )
    request = SplitRequest(
        spec=spec.split,
        seed=seed,
        method=method,
        has_test=has_test,
        source=str(spec.source),
        labels=pool_y,
        class_names=classes,
    )
    return split_indices(len(pool_y), request)


def _text_inputs(train_x: np.ndarray, spec: DataSpec) -> tuple[TextFeatures, TextPreprocessing]:
    """The manifest's features and preprocessing of texts: the training split's vocabulary."""
    from dltrain.data.preparation.vocabulary import describe_texts

    return describe_texts(train_x.tolist(), spec.text, "text", spec.sampling)


def _image_inputs(
    train_x: np.ndarray, spec: DataSpec, fmt: DataFormat
) -> tuple[ImageFeatures, ImagePreprocessing, str]:
    """The manifest's features and preprocessing of images (the training split's scaling), and
    a note saying which raw range the scaling maps from and why."""
    images = _with_channels(train_x)
    features = ImageFeatures(shape=list(images.shape[1:]), dtype=str(images.dtype))
    found = (
        None
        if spec.pixel_range is not None
        else infer_pixel_range(images, decoded_images=fmt == DataFormat.IMAGES)
    )
    moments = _moments(images) if spec.scaling == Scaling.STANDARD else None
    preprocessing, note = image_preprocessing(spec, found, moments)
    return features, preprocessing, note


def image_preprocessing(
    spec: DataSpec, found: PixelRange | None, moments: tuple[float, float] | None
) -> tuple[ImagePreprocessing, str]:
    """The manifest's image preprocessing, and the note saying which raw range it maps from.

    Args:
        spec: the recipe's data section (its scaling, sampling and any ``pixel_range``).
        found: the inferred raw range; None when the recipe sets ``data.pixel_range``.
        moments: the training split's pixel mean and deviation (standard scaling needs them).
    """
    if found is None:
        assert spec.pixel_range is not None
        low, high = spec.pixel_range
        why = "data.pixel_range"
    else:
        low, high, why = found.low, found.high, found.reason
    stats = scaling_from(spec.scaling, (low, high), moments)
    preprocessing = ImagePreprocessing(
        scaling=spec.scaling,
        scale=stats["scale"],
        offset=stats["offset"],
        sampling=spec.sampling,
        pixel_range=[low, high],
    )
    return preprocessing, _scaling_note(preprocessing, why)


def _scaling_note(preprocessing: ImagePreprocessing, why: str) -> str:
    low, high = preprocessing.pixel_range
    scaling = preprocessing.scaling
    if scaling == Scaling.NONE:
        return f"pixels not scaled (scaling: none); raw values {low:g} to {high:g} ({why})"
    if scaling == Scaling.STANDARD:
        return f"pixels standardised with the training split's mean and deviation ({why})"
    to_low, to_high = preprocessing.value_range()
    factor = f" (×1/{high - low:g})" if low == 0 and scaling == Scaling.UNIT else ""
    return (
        f"pixels scaled from {low:g} to {high:g} onto {to_low:g} to {to_high:g}{factor}: {why}; "
        f"set data.pixel_range: [low, high] to choose another range"
    )


def profile_of(
    hashes: dict[str, np.ndarray],
    labels: dict[str, np.ndarray],
    classes: list[str],
    notes: list[str],
    unit: str,
) -> Profile:
    """The profile of split examples from their content hashes and labels: duplicates within
    a split, examples shared between splits (leaks), class counts."""
    order = np.concatenate([np.full(len(h), i, np.int8) for i, h in enumerate(hashes.values())])
    every = np.concatenate(list(hashes.values()))
    duplicates = 0
    for h in hashes.values():
        duplicates += len(h) - len(np.unique(h))
    every_label = np.concatenate(list(labels.values()))
    counts = np.bincount(every_label, minlength=len(classes))
    return Profile(
        columns=[],
        rows=len(every_label),
        duplicate_rows=duplicates,
        class_counts=dict(zip(classes, counts.tolist(), strict=True)),
        leaking_rows=leaking_counts(every, order),
        notes=list(notes),
        unit=unit,
    )


def example_hashes(x: np.ndarray) -> np.ndarray:
    """Each example's content hash (64 bits of BLAKE2b over its bytes)."""
    return _example_hashes(x, is_text=False)


def _example_hashes(x: np.ndarray, is_text: bool) -> np.ndarray:
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


def class_names_of(
    split_labels: dict[str, np.ndarray], names: list[str] | None, spec: DataSpec
) -> list[str]:
    """The class names of a source's labels (its own split ``train`` and maybe ``test``):
    the recipe's ``data.classes``, the folder names, or the label numbers.

    Raises:
        DataError: negative or too many labels, test labels training lacks, one class only.
    """
    labels = np.concatenate(list(split_labels.values()))
    low, high = int(labels.min()), int(labels.max())
    if low < 0:
        raise DataError(
            f"Labels in {spec.source} go down to {low}. Expected class indices 0, 1, 2, …; "
            f"relabel the data."
        )
    if high >= MAX_CLASSES:
        raise DataError(
            f"Labels in {spec.source} go up to {high:,}, which would make {high + 1:,} classes "
            f"(dltrain takes at most {MAX_CLASSES:,}). Expected class indices 0, 1, 2, …; "
            f"renumber the labels consecutively."
        )
    if "test" in split_labels:  # class folders check this by name; arrays by label
        unseen = np.setdiff1d(split_labels["test"], split_labels["train"])
        if len(unseen):
            shown = ", ".join(str(int(label)) for label in unseen[:10])
            raise DataError(
                f"The test split of {spec.source} has label(s) {shown} that its training "
                f"examples never have. Expected the test classes among the training ones (a "
                f"model cannot predict a class it never saw); fix the labels, or move those "
                f"examples into the training arrays."
            )
    present = np.unique(labels)
    if len(present) < 2:
        what = (names or [str(int(present[0]))])[int(present[0])] if len(present) else "none"
        raise DataError(
            f"{spec.source} holds examples of one class only ({what}). A classifier needs at "
            f"least two classes to tell apart; add examples of the others (for image or text "
            f"folders, one subfolder per class)."
        )
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


def scaling_stats(
    train_x: np.ndarray, scaling: Scaling, pixel_range: tuple[float, float] | None = None
) -> dict[str, float]:
    """``scale`` and ``offset`` such that ``x * scale + offset`` is the scaled input.

    Fit on the training split only, so nothing about validation or test leaks into training.

    Args:
        train_x: the training split's examples.
        scaling: how to scale.
        pixel_range: the raw [low, high] that unit and symmetric scaling map from (default:
            ``infer_pixel_range``).
    """
    if scaling == Scaling.NONE:
        return {"scale": 1.0, "offset": 0.0}
    if pixel_range is None:
        found = infer_pixel_range(train_x)
        pixel_range = (found.low, found.high)
    moments = _moments(train_x) if scaling == Scaling.STANDARD else None
    return scaling_from(scaling, pixel_range, moments)


def _moments(train_x: np.ndarray) -> tuple[float, float]:
    return float(train_x.mean(dtype=np.float64)), float(train_x.std(dtype=np.float64))


def scaling_from(
    scaling: Scaling, pixel_range: tuple[float, float], moments: tuple[float, float] | None
) -> dict[str, float]:
    """``scale`` and ``offset`` of ``scaling`` from the raw range, or for standard scaling the
    training split's (mean, deviation)."""
    if scaling == Scaling.NONE:
        return {"scale": 1.0, "offset": 0.0}
    low, high = pixel_range
    if scaling == Scaling.STANDARD:
        assert moments is not None, "standard scaling needs the training split's moments"
        mean, std = moments[0], moments[1] or 1.0
        return {"scale": 1.0 / std, "offset": -mean / std}
    span = (high - low) or 1.0
    if scaling == Scaling.UNIT:
        return {"scale": 1.0 / span, "offset": -low / span}
    return {"scale": 2.0 / span, "offset": -2.0 * low / span - 1.0}
