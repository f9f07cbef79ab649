"""Durations as recipes and flags write them, and as dltrain prints them. Light: no pydantic,
so the CLI formats durations without building the recipe's models (the field type is in
``recipe/fields.py``).

One grammar for every duration field (``train.time_budget``, ``tune.timeout``,
``tune.trial_timeout``): plain seconds (``5400``, ``"0.5"``) or numbers with units d, h, m, s,
largest first, each at most once (``45s``, ``90m``, ``2h30m``, ``1d``, ``1h 30m``).
"""

from __future__ import annotations

import contextlib
import math
import re
from typing import Any

_NUMBER = r"(\d+(?:\.\d*)?|\.\d+)"
_WITH_UNITS = re.compile("".join(f"(?:{_NUMBER}{unit})?" for unit in "dhms"), re.IGNORECASE)
_UNIT_SECONDS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def parse_duration(value: Any) -> float | None:
    """Seconds from a duration as a user writes it; ``None`` (no limit) stays ``None``.

    Args:
        value: a number of seconds, or a string such as ``"90"``, ``"45s"``, ``"90m"``,
            ``"2h30m"`` or ``"1d"``.

    Returns:
        The duration in seconds, or ``None``.

    Raises:
        ValueError: anything else (pydantic turns it into the recipe's error paragraph).

    Example:
        >>> parse_duration("2h30m")
        9000.0
    """
    if value is None:
        return None
    seconds = _seconds(value)
    if seconds is None or not math.isfinite(seconds):
        raise ValueError(
            f"expected a duration: seconds (5400) or a number with units d, h, m, s, largest "
            f"first, such as 90s, 10m or 1h30m (also 2h, 1d). Received: {value!r}"
        )
    return seconds


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool):  # YAML's `yes` is not a duration, though bool is an int
        return None
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str):
        return None
    text = re.sub(r"\s+", "", value)
    with contextlib.suppress(ValueError):
        return float(text)
    match = _WITH_UNITS.fullmatch(text)
    if not text or match is None:
        return None
    sizes = (size for _, size in _UNIT_SECONDS)
    return sum(float(n) * size for n, size in zip(match.groups(), sizes, strict=True) if n)


def format_duration(seconds: float) -> str:
    """A duration in the grammar ``parse_duration`` reads: ``5400`` → ``1h30m``.

    Under ten seconds it keeps two significant digits (``0.5s``, ``2.4s``); from there on, whole
    seconds in the largest units (``45s``, ``1m30s``, ``1d2h``), which is how people say them.

    Args:
        seconds: the duration, at least 0.

    Returns:
        Its text, such as ``45s`` or ``2h30m``.
    """
    if seconds < 10:
        return f"{seconds:.2g}s"
    left = round(seconds)
    parts = []
    for unit, size in _UNIT_SECONDS:
        count, left = divmod(left, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
