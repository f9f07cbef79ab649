"""The raw value range that pixel scaling maps from, read from the training split's real values.

A fixed 1/255 is right for 8-bit photographs and wrong for everything else: scikit-learn's digits
hold 0-16, so 1/255 fed the model inputs in [0, 0.06]; float arrays often arrive already in
[0, 1]. ``infer_pixel_range`` picks the range the data was written in, and says why, so prepare
can print it and record it in the manifest, where the model's first layer reads it back.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EIGHT_BIT_FLOOR = 128  # integer data whose maximum reaches this uses the 8-bit range 0-255


@dataclass(frozen=True)
class PixelRange:
    """The raw ``low`` and ``high`` that scaling maps to the scaled range, and why."""

    low: float
    high: float
    reason: str

    def describe(self) -> str:
        """The range in words, e.g. ``0 to 16``."""
        return f"{self.low:g} to {self.high:g}"


# What image files decode to, whatever their pixels (data/readers/images.py stores uint8).
DECODED_IMAGES = PixelRange(0.0, 255.0, "image files decode to 8-bit pixels")


def infer_pixel_range(train_x: np.ndarray, *, decoded_images: bool = False) -> PixelRange:
    """The value range the training examples were written in.

    Integers reaching 128 or more are 8-bit pixels (0-255, the format's range: a sample whose
    brightest pixel is 250 still means 255 is white); smaller non-negative integers use their
    own maximum (digits 0-16, binary 0/1 images); floats already within [0, 1] or [-1, 1] keep
    that range; anything else uses the training split's minimum and maximum.

    Args:
        train_x: the training split's examples.
        decoded_images: the examples were decoded from image files (always 8-bit).

    Example:
        >>> infer_pixel_range(np.array([[0, 7, 16]], np.uint8)).describe()
        '0 to 16'
    """
    if decoded_images:
        return DECODED_IMAGES
    low, high = float(train_x.min()), float(train_x.max())
    seen = f"{train_x.dtype} values {low:g} to {high:g}"
    if np.issubdtype(train_x.dtype, np.integer) and low >= 0:
        if high >= EIGHT_BIT_FLOOR and high <= 255:
            return PixelRange(0.0, 255.0, f"{seen}, reaching 128 or more: 8-bit pixels")
        if high < EIGHT_BIT_FLOOR:
            return PixelRange(
                0.0, high or 1.0, f"{seen}, all below 128: not 8-bit pixels, so their own maximum"
            )
        return PixelRange(0.0, high, f"{seen}: beyond 8 bits, so their own maximum")
    if low >= 0 and high <= 1:
        return PixelRange(0.0, 1.0, f"{seen}: already within 0 to 1")
    if low >= -1 and high <= 1:
        return PixelRange(-1.0, 1.0, f"{seen}: already within -1 to 1")
    if high == low:
        high = low + 1.0
    return PixelRange(low, high, f"{seen}: the training split's minimum and maximum")
