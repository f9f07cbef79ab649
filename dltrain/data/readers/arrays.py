"""Array sources: what reading one gives (``SourceArrays``), ``.npz`` archives, and the checks
every array of examples passes, whether ``prepare`` or ``predict`` reads it.

A reader returns the source's own splits (``train`` and, when the source has one, ``test``) as
NumPy arrays, plus the files it read so that prepare can fingerprint them.
"""

from __future__ import annotations

import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dltrain.errors import DataError
from dltrain.recipe.data import DataFormat

FLOAT32_MAX = float(np.finfo(np.float32).max)
# The array names an .npz may use, as (examples, labels), in the order they are looked for:
# keras.datasets' layout first (its x_test/y_test is the source's own test split).
NPZ_PAIRS = (("x_train", "y_train"), ("x", "y"), ("images", "labels"), ("inputs", "targets"))
# Where predict finds the examples of an .npz: any examples name above, test arrays before
# training ones (an archive holding both is usually scored on its test part).
NPZ_EXAMPLE_KEYS = ("x", "images", "inputs", "x_test", "x_train")


@dataclass
class SourceArrays:
    """Raw examples and integer labels, split as the source ships them."""

    splits: dict[str, tuple[np.ndarray, np.ndarray]]
    files: list[Path] = field(default_factory=list)
    format: DataFormat = DataFormat.AUTO
    class_names: list[str] | None = None  # from folder names; None for integer labels
    notes: list[str] = field(default_factory=list)

    @property
    def has_test(self) -> bool:
        return "test" in self.splits


def check_examples(x: np.ndarray, where: str) -> None:
    """Refuse examples no model can learn from or be asked about: not numbers, or not finite.

    The same check runs when prepare reads a source and when predict reads inputs, so an array
    prepare stored is one predict accepts, and the reverse.

    Raises:
        DataError: naming the array and what to do.
    """
    if x.ndim == 0:
        raise DataError(
            f"{where} holds a single number ({x.dtype}), not an array of examples. Expected "
            f"shape (examples, …); save the examples as a 2-D (or larger) array."
        )
    if len(x) == 0:
        raise DataError(
            f"{where} holds no examples (an array of shape {x.shape}). Expected at least one "
            f"example per row; check that the export finished."
        )
    if x.ndim < 2:
        raise DataError(
            f"{where} holds an array of shape {x.shape}; expected one example per row, shape "
            f"(examples, …). Save the examples as a 2-D (or larger) array."
        )
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise DataError(
            f"{where} holds {x.dtype} examples; expected integers or floats (pixels, features). "
            f"Convert the array before saving it."
        )
    if np.issubdtype(x.dtype, np.floating):
        # float32 is what the model computes in: larger values become infinite there
        bad = ~np.isfinite(x) | (np.abs(np.nan_to_num(x)) > FLOAT32_MAX)
        if bad.any():
            rows = int(bad.reshape(len(x), -1).any(axis=1).sum())
            raise DataError(
                f"{where} holds NaN, infinite or out-of-range values (beyond ±3.4e38, "
                f"float32's range) in {rows:,} example(s). A model cannot learn from them or "
                f"predict them; fill, rescale or drop those examples first."
            )


def check_splits_agree(splits: dict[str, tuple[np.ndarray, np.ndarray]], where: str) -> None:
    """The source's own test examples must be shaped like its training examples: one model
    takes both, and prepare stores each split as it comes.

    Raises:
        DataError: naming both shapes.
    """
    shape = splits["train"][0].shape[1:]
    for name, (x, _) in splits.items():
        if x.shape[1:] != shape:
            raise DataError(
                f"{where}: the {name} examples have shape {x.shape[1:]} but the training "
                f"examples {shape}. Expected one shape for every split (a model takes one); "
                f"resize or re-export the {name} examples like the training ones."
            )


def load_npz(path: Path, fix: str) -> dict[str, np.ndarray]:
    """Every array of an .npz archive, without pickled objects.

    Args:
        path: the archive.
        fix: how to fix an unreadable archive, for the error's last sentence.

    Raises:
        DataError: the archive is truncated, corrupt or not an .npz at all.
    """
    with path.open("rb") as handle:
        head = handle.read(4)
    if head != b"PK\x03\x04" and head != b"PK\x05\x06":  # zip's local header, empty archive
        # np.load would read it as a pickle and suggest allow_pickle=True: never for a user's file
        raise DataError(
            f"{path} is not an .npz archive: it does not start like a zip file (first bytes: "
            f"{head.hex() or 'none, it is empty'}). Expected a file written by numpy.savez; {fix}."
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except (OSError, ValueError, zlib.error, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(
            f"{path} is not a readable .npz archive ({exc}). Expected a file written by "
            f"numpy.savez; {fix}."
        ) from None


def read_npz(path: Path) -> SourceArrays:
    """Read ``x_train``/``y_train`` (and ``x_test``/``y_test``), or ``x``/``y``, from an .npz.

    Raises:
        DataError: unreadable archive, unexpected keys, or examples that cannot train.
    """
    arrays = load_npz(path, "copy it again or save it without pickled objects")
    for x_key, y_key in NPZ_PAIRS:
        if x_key in arrays and y_key in arrays:
            splits = {"train": (arrays[x_key], arrays[y_key])}
            if x_key == "x_train" and "x_test" in arrays and "y_test" in arrays:
                splits["test"] = (arrays["x_test"], arrays["y_test"])
            break
    else:
        expected = ", ".join(f"{x} and {y}" for x, y in NPZ_PAIRS[1:])
        raise DataError(
            f"{path} holds the arrays {', '.join(sorted(arrays)) or 'none'}. Expected x_train and "
            f"y_train (with optional x_test and y_test, as in keras.datasets), or {expected}. "
            f"Rename the arrays when saving."
        )
    for name, (x, y) in splits.items():
        if x.ndim == 0:  # len() of a scalar would fail before check_examples could say so
            check_examples(x, f"{path} ({name} split)")
        if y.ndim != 1 or len(x) != len(y):
            raise DataError(
                f"{path}: the {name} split has {len(x)} examples but labels of shape {y.shape}. "
                f"Expected one integer label per example."
            )
        if not np.issubdtype(y.dtype, np.integer):
            raise DataError(
                f"{path}: labels of the {name} split are {y.dtype}, expected integers (class "
                f"indices). Convert them before saving."
            )
        check_examples(x, f"{path} ({name} split)")
        splits[name] = (x, y.astype(np.int64))
    check_splits_agree(splits, str(path))
    return SourceArrays(splits=splits, files=[path], format=DataFormat.NPZ)
