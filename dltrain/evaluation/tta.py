"""Test-time augmentation: a classifier's probabilities averaged over views of each image.

``evaluate --tta N`` and ``predict --tta N`` score the original image and N − 1 views made with
the flips and shifts the run trained with (``model.augmentation``: ``flip``, ``crop``'s padding,
``translation``), then average the N softmax outputs. The views are fixed by the run's seed and
the view's number, and each view transforms every image alike, so the answer does not depend on
the batch size or on which other images are scored with it. Rotation, zoom and contrast make no
views: they blur or resample pixels rather than show the image as it could have been taken.

Light: NumPy only; the model is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from dltrain.errors import UsageError

MAX_VIEWS = 64  # each view is a full pass over the examples

_FLIPS = {
    "none": [(False, False)],
    "horizontal": [(False, False), (True, False)],
    "vertical": [(False, False), (False, True)],
    "horizontal_and_vertical": [(False, False), (True, False), (False, True), (True, True)],
}


@dataclass(frozen=True)
class TtaViews:
    """How the views of test-time augmentation are made.

    Attributes:
        num_views: views averaged, the original image included (>= 2).
        flips: the (horizontal, vertical) flips view k cycles through (k mod their number).
        shift: the largest shift of a view, in pixels either way (0: no shifts).
        fill: the raw pixel value a shift uncovers (black).
        seed: fixes each view's shift.
    """

    num_views: int
    flips: tuple[tuple[bool, bool], ...]
    shift: int
    fill: float
    seed: int

    def transform(self, k: int) -> tuple[bool, bool, int, int]:
        """View ``k``'s (horizontal flip, vertical flip, row shift, column shift); view 0 is
        the image itself."""
        if k == 0:
            return False, False, 0, 0
        horizontal, vertical = self.flips[k % len(self.flips)]
        dy = dx = 0
        if self.shift:
            dy, dx = (
                int(v)
                for v in np.random.default_rng([self.seed, k]).integers(
                    -self.shift, self.shift + 1, size=2
                )
            )
        return horizontal, vertical, dy, dx

    def view(self, images: np.ndarray, k: int) -> np.ndarray:
        """View ``k`` of a batch of images shaped (batch, height, width[, channels])."""
        horizontal, vertical, dy, dx = self.transform(k)
        out = images
        if horizontal:
            out = out[:, :, ::-1]
        if vertical:
            out = out[:, ::-1]
        if dy or dx:
            out = _shifted(out, dy, dx, self.fill)
        return np.ascontiguousarray(out)

    def describe(self) -> str:
        """One sentence for the report and the model card: the metrics are of averaged views.

        Example:
            >>> TtaViews(3, ((False, False), (True, False)), 2, 0.0, 7).describe()[-66:]
            'the image (flips: none, horizontal; shifts of up to 2 px, seed 7).'
        """
        flips = ", ".join(_flip_name(h, v) for h, v in self.flips)
        shifts = f"; shifts of up to {self.shift} px, seed {self.seed}" if self.shift else ""
        return (
            f"Test-time augmentation: each probability is the mean over {self.num_views} views "
            f"of the image (flips: {flips}{shifts})."
        )

    def to_json(self) -> dict[str, Any]:
        """As metrics.json records it."""
        return {
            "views": self.num_views,
            "flips": [_flip_name(h, v) for h, v in self.flips],
            "shift": self.shift,
            "seed": self.seed,
        }


def tta_views(
    num_views: int,
    *,
    task: str,
    image_shape: list[int] | None,
    augmentation: dict[str, Any] | None,
    fill: float,
    seed: int,
    run_name: str,
) -> TtaViews | None:
    """The views ``--tta num_views`` asks of a run, or None for 1 (no augmentation).

    Args:
        num_views: the ``--tta`` value.
        task: the run's task.
        image_shape: the model's raw image shape, or None for a model that does not read
            images.
        augmentation: the run's recipe's ``model.augmentation`` (plain YAML), or None.
        fill: the raw pixel value of black (the pixel range's low end).
        seed: the run's recipe seed.
        run_name: the run's folder name, for messages.

    Raises:
        UsageError: fewer than 1 or more than 64 views; a model that does not classify images;
            a recipe with neither flips nor shifts; more views than flips alone can make.
    """
    if not 1 <= num_views <= MAX_VIEWS:
        raise UsageError(
            f"--tta takes the number of views to average, the original image included: 1 "
            f"(off) to {MAX_VIEWS}. Received: {num_views}. Try --tta 4."
        )
    if num_views == 1:
        return None
    if image_shape is None or task not in ("binary", "multiclass"):
        what = "images" if image_shape is not None else "no images"
        raise UsageError(
            f"--tta averages a classifier's probabilities over flipped and shifted views of each "
            f"image, but run {run_name} is a {task} model that reads {what}. Drop --tta (it "
            f"applies to image classifiers: cnn, transfer)."
        )
    settings = augmentation or {}
    flips = _FLIPS.get(str(settings.get("flip", "none")), _FLIPS["none"])
    shift = _shift(settings, image_shape)
    if len(flips) == 1 and shift == 0:
        raise UsageError(
            f"--tta makes its views with the flips and shifts run {run_name} trained with, but "
            f"its recipe's model.augmentation has no flip, crop or translation (views the model "
            f"never saw in training would blur its answers). Drop --tta, or train with e.g. "
            f"`model.augmentation: {{flip: horizontal, crop: {{padding: 4}}}}`."
        )
    if shift == 0 and num_views > len(flips):
        raise UsageError(
            f"--tta {num_views} asks for {num_views} views, but run {run_name}'s augmentation "
            f"(flip: {settings.get('flip')}, no crop or translation) makes only {len(flips)} "
            f"different ones. Use --tta {len(flips)}."
        )
    return TtaViews(num_views, tuple(flips), shift, fill, seed)


def predict_views(predict: Any, images: np.ndarray, views: TtaViews | None) -> np.ndarray:
    """The mean of ``predict`` over the views of ``images`` (``predict`` alone without views).

    Args:
        predict: maps a batch of raw images to class probabilities.
        images: raw images, (batch, height, width[, channels]).
        views: the views to average, or None.

    Returns:
        The averaged probabilities, float32, one row per image.
    """
    if views is None:
        return np.asarray(predict(images))
    total: np.ndarray | None = None
    for k in range(views.num_views):
        outputs = np.asarray(predict(views.view(images, k)), dtype=np.float64)
        total = outputs if total is None else total + outputs
    assert total is not None
    return (total / views.num_views).astype(np.float32)


@dataclass(frozen=True)
class AveragedViews:
    """A Keras model's stand-in whose ``predict_on_batch`` averages over ``views``."""

    model: Any
    views: TtaViews

    def predict_on_batch(self, images: Any) -> np.ndarray:
        return predict_views(self.model.predict_on_batch, np.asarray(images), self.views)


def _shift(settings: dict[str, Any], image_shape: list[int]) -> int:
    crop = settings.get("crop")
    padding = int(crop.get("padding", 0)) if isinstance(crop, dict) else 0
    translation = float(settings.get("translation") or 0.0)
    return max(padding, int(round(translation * min(image_shape[0], image_shape[1]))))


def _shifted(images: np.ndarray, dy: int, dx: int, fill: float) -> np.ndarray:
    """Images moved ``dy`` rows down and ``dx`` columns right, the uncovered border ``fill``."""
    h, w = images.shape[1], images.shape[2]
    out = np.full_like(images, fill)
    src_rows = slice(max(0, -dy), h - max(0, dy))
    dst_rows = slice(max(0, dy), h - max(0, -dy))
    src_cols = slice(max(0, -dx), w - max(0, dx))
    dst_cols = slice(max(0, dx), w - max(0, -dx))
    out[:, dst_rows, dst_cols] = images[:, src_rows, src_cols]
    return out


def _flip_name(horizontal: bool, vertical: bool) -> str:
    if horizontal and vertical:
        return "horizontal_and_vertical"
    return "horizontal" if horizontal else "vertical" if vertical else "none"
