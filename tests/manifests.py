"""Typed manifests for model tests, built from the few fields a test cares about.

A real manifest comes from `dltrain prepare`; builder and loss tests need only its feature kind,
target and preprocessing, so this fills the rest (source, digest, splits) with neutral values
and validates the whole through the same `Manifest` class that reads `manifest.json`.
"""

from __future__ import annotations

from typing import Any

from dltrain.manifest import Manifest

_PREPROCESSING: dict[str, dict[str, Any]] = {
    "image": {"scaling": "unit", "scale": 1 / 255, "offset": 0.0},
    "table": {},
    "text": {"vocabulary": [], "standardize": "lower_and_strip_punctuation"},
    "sequence": {},
}


def manifest_of(
    task: str = "multiclass",
    features: dict[str, Any] | None = None,
    target: dict[str, Any] | None = None,
    preprocessing: dict[str, Any] | None = None,
    splits: dict[str, Any] | None = None,
) -> Manifest:
    """A valid manifest with the given parts; what they leave out gets a neutral value."""
    features = dict(features or {"kind": "image", "shape": [28, 28, 1], "dtype": "uint8"})
    kind = features["kind"]
    if kind == "table":
        features.setdefault("columns", [])
        features.setdefault("num_features", 0)
    if kind == "text":
        features.setdefault("column", "text")
        features.setdefault("vocabulary_size", 2)
        features.setdefault("sequence_length", 8)
    if kind == "sequence":
        features.setdefault("columns", [f"f{i}" for i in range(features["shape"][1])])
        features.setdefault("time_column", "time")
    pre = {**_PREPROCESSING[kind], **(preprocessing or {})}
    if kind == "text":
        pre.setdefault("sequence_length", features["sequence_length"])
    if kind == "sequence":
        width = features["shape"][1]
        pre.setdefault("mean", [0.0] * width)
        pre.setdefault("variance", [1.0] * width)
    target = dict(target or {"classes": [str(i) for i in range(10)], "num_classes": 10})
    if "classes" in target:
        target.setdefault("num_classes", len(target["classes"]))
        target.setdefault("class_weights", [1.0] * target["num_classes"])
    else:
        width = len(target["mean"])
        target.setdefault("columns", [f"y{i}" for i in range(width)])
        target.setdefault("std", [1.0] * width)
        target.setdefault("min", [float("-inf")] * width)
        target.setdefault("max", [float("inf")] * width)
    return Manifest.model_validate(
        {
            "created": "2026-01-01T00:00:00+00:00",
            "dltrain_version": "test",
            "task": task,
            "source": {"path": "test", "format": "npz", "files": [], "fingerprint": "test"},
            "data_spec_digest": "test",
            "seed": 0,
            "features": features,
            "target": target,
            "preprocessing": pre,
            "splits": splits or {"train": {"num_examples": 0, "shards": []}},
            "source_splits": ["train"],
        }
    )
