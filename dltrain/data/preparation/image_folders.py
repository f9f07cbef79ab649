"""Preparing image class folders a shard at a time, so an image set may be larger than memory.

The folders are listed (labels from the folder names, nothing decoded), split by their labels,
then each split is decoded in the order it is stored, a shard's worth of images at a time, and
written while the next are decoded. What the old whole-set path computed from the decoded arrays
is gathered on the way: each image's content hash (duplicates and leaks), the training pixels'
counts (standard scaling's mean and deviation). The stored shards are the ones decoding the
whole set and indexing it by the split's rows gave.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dltrain.data.pixels import DECODED_IMAGES
from dltrain.data.preparation import Prepared
from dltrain.data.preparation.arrays import (
    class_dataset,
    class_names_of,
    example_hashes,
    image_preprocessing,
    profile_of,
    split_rows,
)
from dltrain.data.preparation.quality import check_quality
from dltrain.data.readers.images import (
    ImageFolders,
    check_image,
    decoded_notes,
    list_image_folders,
)
from dltrain.data.splits import SPLIT_NAMES
from dltrain.data.store import ShardLayout, ShardWriter, shard_rows_for
from dltrain.manifest import ImageFeatures
from dltrain.recipe.data import DataFormat, DataSpec, Scaling


class PixelCounts:
    """How often each 8-bit value occurs among the training pixels: their exact mean and
    deviation without holding the pixels."""

    def __init__(self) -> None:
        self.counts = np.zeros(256, dtype=np.int64)

    def add(self, images: np.ndarray) -> None:
        self.counts += np.bincount(images.reshape(-1), minlength=256)

    def moments(self) -> tuple[float, float]:
        """The pixels' mean and (population) standard deviation."""
        values = np.arange(256, dtype=np.float64)
        total = max(int(self.counts.sum()), 1)
        mean = float((values * self.counts).sum() / total)
        variance = float((((values - mean) ** 2) * self.counts).sum() / total)
        return mean, variance**0.5


def prepare_image_folders(spec: DataSpec, seed: int, folder: Path, *, strict: bool) -> Prepared:
    """Split and store image class folders, decoding one shard's worth of images at a time.

    Args:
        spec: the recipe's data section (``source`` the class-folder root).
        seed: fixes the splits.
        folder: the (temporary) dataset folder the shards go to.
        strict: fail on any profile warning (``--strict``).

    Returns:
        The dataset's description and profile.

    Raises:
        DataError: no class folders, an image that cannot be decoded, a split that cannot be made.
        DataQualityError: a check failed (the shards already written go with the temporary
            folder).
    """
    folders = list_image_folders(spec.source, spec.image)
    for paths, _ in folders.splits.values():
        for path in paths:  # a file that is no image is named before the split can fail
            check_image(path)
    source_labels = {name: y for name, (_, y) in folders.splits.items()}
    classes = class_names_of(source_labels, folders.classes, spec)
    has_test = "test" in folders.splits
    pool_paths, pool_y = folders.splits["train"]
    rows = split_rows(pool_y, has_test, spec, seed, DataFormat.IMAGES, classes)
    planned: dict[str, tuple[list[Path], np.ndarray]] = {
        name: ([pool_paths[i] for i in r], pool_y[r])
        for name, r in zip(SPLIT_NAMES, rows, strict=True)
    }
    if has_test:
        planned["test"] = folders.splits["test"]
    writer = ShardWriter(
        folder,
        layout=ShardLayout.NPZ,
        num_classes=len(classes),
        background=True,  # a shard is compressed and written while the next is decoded
        rows_per_shard=spec.shard_rows,
    )
    pixels = PixelCounts() if spec.scaling == Scaling.STANDARD else None
    hashes: dict[str, np.ndarray] = {}
    resized = 0
    try:
        for name in SPLIT_NAMES:
            paths, y = planned[name]
            counted = pixels if name == "train" else None
            hashes[name], changed = _store_split(writer, name, (paths, y), folders, counted)
            resized += changed
        notes = decoded_notes(folders, resized)
        labels = {name: y for name, (_, y) in planned.items()}
        profile = profile_of(hashes, labels, classes, notes, "image")
        check_quality(profile, spec, strict=strict)
        stored = writer.close()
    except BaseException:
        writer.abort()
        raise
    found = None if spec.pixel_range is not None else DECODED_IMAGES
    preprocessing, note = image_preprocessing(
        spec, found, pixels.moments() if pixels is not None else None
    )
    profile.notes.append(note)
    features = ImageFeatures(shape=[*folders.size, folders.channels], dtype="uint8")
    description = class_dataset(
        classes, stored, (features, preprocessing), sorted(folders.splits), notes
    )
    return Prepared(description=description, profile=profile)


def _store_split(
    writer: ShardWriter,
    name: str,
    examples: tuple[list[Path], np.ndarray],
    folders: ImageFolders,
    pixels: PixelCounts | None,
) -> tuple[np.ndarray, int]:
    """Decode and write one split's images in order, a bounded chunk at a time.

    Returns:
        Each image's content hash, and how many images had to be resized.
    """
    paths, y = examples
    (height, width), channels = folders.size, folders.channels
    chunk = shard_rows_for(height * width * channels)  # at most one shard's bytes decoded
    hashes = [np.zeros(0, np.uint64)]
    resized = 0
    for start in range(0, len(paths), chunk):
        images, changed = folders.decode(paths[start : start + chunk])
        resized += changed
        hashes.append(example_hashes(images))
        if pixels is not None:
            pixels.add(images)
        writer.write(name, images, y[start : start + chunk])
    if not paths:
        writer.write(name, np.zeros((0, height, width, channels), np.uint8), y[:0])
    return np.concatenate(hashes), resized
