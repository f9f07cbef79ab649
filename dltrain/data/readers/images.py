"""Image class folders: ``[train/]<class>/*.jpg|png|…`` (and ``test/<class>/``), decoded with
Pillow, resized to one size and one channel count, stored as uint8.

JPEGs are decoded at reduced resolution when the target size allows it (Pillow's ``draft``),
which makes reading the 960 224×224 flowers at 64×64 several times faster than a full decode.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

from dltrain.data.readers.arrays import SourceArrays
from dltrain.data.readers.formats import IMAGE_SUFFIXES, class_folders
from dltrain.errors import DataError
from dltrain.recipe.data import DataFormat, ImageSpec


@dataclass(frozen=True)
class ImageFolders:
    """A class-folder layout listed, not yet decoded: each split's files and labels, and the
    one size and channel count every image is decoded to."""

    classes: list[str]
    splits: dict[str, tuple[list[Path], np.ndarray]]  # split → (files, class indices)
    size: tuple[int, int]  # (height, width)
    channels: int

    def decode(self, paths: list[Path]) -> tuple[np.ndarray, int]:
        """These files decoded as uint8 (N, H, W, C), and how many had to be resized."""
        images = np.empty((len(paths), *self.size, self.channels), dtype=np.uint8)
        resized = 0
        for row, path in enumerate(paths):
            images[row], changed = decode(path, self.size, self.channels)
            resized += changed
        return images, resized


def list_image_folders(root: Path, spec: ImageSpec | None = None) -> ImageFolders:
    """List a class-folder layout, reading only the first image's header and mode.

    The size is ``spec.size`` or the first image's; the channels ``spec.channels`` or 1 when
    the first image is greyscale, else 3.

    Raises:
        DataError: no class folders, an empty class, or a first image that cannot be decoded.
    """
    spec = spec or ImageSpec()
    layout = class_folders(root, IMAGE_SUFFIXES, "image")
    first = layout.splits["train"][layout.classes[0]][0]
    with _open(first) as image:
        width, height = image.size
        grey = image.mode in ("1", "L", "I;16", "I", "F")
    splits = {}
    for split, per_class in layout.splits.items():
        pairs = [
            (index, path)
            for index, name in enumerate(layout.classes)
            for path in per_class.get(name, [])
        ]
        labels = np.array([index for index, _ in pairs], dtype=np.int64)
        splits[split] = ([path for _, path in pairs], labels)
    return ImageFolders(
        classes=layout.classes,
        splits=splits,
        size=(spec.size[0], spec.size[1]) if spec.size else (height, width),
        channels=spec.channels or (1 if grey else 3),
    )


def decoded_notes(folders: ImageFolders, resized: int) -> list[str]:
    """What decoding did to the images, as prepare reports it."""
    (height, width), channels = folders.size, folders.channels
    notes = [f"images decoded as {height}×{width}×{channels} uint8"]
    if resized:
        notes.append(f"{resized:,} image(s) resized to {width}×{height}")
    return notes


def read_image_folders(root: Path, spec: ImageSpec | None = None) -> SourceArrays:
    """Decode every image of a class-folder layout into uint8 arrays (N, H, W, C).

    For a folder of inputs to a model (predict, evaluate --data); ``prepare`` decodes a
    training set a shard at a time instead (data/preparation/image_folders.py).

    Raises:
        DataError: no class folders, an empty class, an image that cannot be decoded, or more
            pixels than memory holds.
    """
    folders = list_image_folders(root, spec)
    splits = {}
    files: list[Path] = []
    resized = 0
    for split, (paths, labels) in folders.splits.items():
        try:
            images, changed = folders.decode(paths)
        except MemoryError:
            (height, width), channels = folders.size, folders.channels
            needed = len(paths) * height * width * channels
            raise DataError(
                f"{root}: {len(paths):,} {split} images of {height}×{width}×{channels} "
                f"pixels need {needed / 2**30:,.1f} GiB of memory, more than this machine can "
                f"give. Set a smaller `data.image.size` (such as [224, 224])."
            ) from None
        resized += changed
        files.extend(paths)
        splits[split] = (images, labels)
    return SourceArrays(
        splits=splits,
        files=files,
        format=DataFormat.IMAGES,
        class_names=folders.classes,
        notes=decoded_notes(folders, resized),
    )


# What Pillow raises for a file it cannot (or will not) decode; DecompressionBombError is a
# small file announcing more than twice Image.MAX_IMAGE_PIXELS (~179M) pixels.
_UNREADABLE = (
    UnidentifiedImageError,
    Image.DecompressionBombError,
    OSError,
    SyntaxError,
    ValueError,
)


def _undecodable(path: Path | BinaryIO, exc: Exception) -> DataError:
    return DataError(
        f"Cannot decode the image {path}: it is not a readable image ({exc}). Expected a "
        f"readable {'/'.join(sorted(s.lstrip('.') for s in IMAGE_SUFFIXES))} file; the copy is "
        f"truncated or not an image. Replace it or delete it."
    )


def _open(path: Path) -> Image.Image:
    try:
        image = Image.open(path)
        image.load()
    except _UNREADABLE as exc:
        raise _undecodable(path, exc) from None
    return image


def check_image(path: Path) -> None:
    """Parse an image file's header, so a bad file is refused before any work starts.

    Raises:
        DataError: the file is not an image Pillow can read.
    """
    try:
        with Image.open(path) as image:
            image.size  # noqa: B018 - opening parses the header
    except _UNREADABLE as exc:
        raise _undecodable(path, exc) from None


_MODES = {1: "L", 3: "RGB", 4: "RGBA"}


def decode(path: Path | BinaryIO, size: tuple[int, int], channels: int) -> tuple[np.ndarray, bool]:
    """One image as uint8 (height, width, channels), resized with bilinear filtering.

    JPEGs are decoded at reduced resolution when the size allows (``draft``); prepare, predict
    and serve (``path`` an in-memory file of the request's bytes) all decode through here, so a
    model sees the same pixels in training and use.

    Returns:
        The array, and whether it had to be resized.

    Raises:
        DataError: the file is not a decodable image.
    """
    height, width = size
    mode = _MODES[channels]
    image: Image.Image
    try:
        image = Image.open(path)
        if mode != "RGBA":
            image.draft(mode, (width, height))
        image = image.convert(mode)
        changed = image.size != (width, height)
        if changed:
            image = image.resize((width, height), Image.Resampling.BILINEAR)
        array = np.asarray(image, dtype=np.uint8)
    except _UNREADABLE as exc:
        raise _undecodable(path, exc) from None
    return array.reshape(height, width, channels), changed
