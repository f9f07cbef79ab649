"""The prepared dataset: sharded, compressed splits plus a manifest that says what they hold.

Layout of ``data/<recipe>/``::

    manifest.json
    train-00000-of-00003.npz      arrays x (examples) and y (integer labels)
    validation-00000-of-00001.npz
    test-00000-of-00001.npz

The whole folder is written under a temporary name and renamed into place, and every shard's
SHA-256 is in the manifest, so a later command never trusts a half-written or edited dataset.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dltrain.errors import DataError
from dltrain.runs import atomic_path, read_json, write_json_atomic

MANIFEST_FILE = "manifest.json"
MANIFEST_VERSION = 1
SHARD_EXAMPLES = 20_000  # ~16 MB of 28×28 images per shard: small enough to verify and reload fast


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fingerprint_files(files: list[Path]) -> dict[str, Any]:
    """Name, size and SHA-256 of each source file, plus one digest over all of them."""
    entries = [{"name": p.name, "bytes": p.stat().st_size, "sha256": sha256_file(p)} for p in files]
    overall = hashlib.sha256(json.dumps(entries, sort_keys=True).encode()).hexdigest()
    return {"files": entries, "fingerprint": overall}


def write_store(
    folder: Path, splits: dict[str, tuple[np.ndarray, np.ndarray]], manifest: dict[str, Any]
) -> None:
    """Write the splits as shards and the manifest, atomically replacing ``folder``.

    Args:
        folder: ``data/<recipe>/``.
        splits: split name → (examples, labels).
        manifest: everything but the per-split shard list, which is added here.
    """
    with atomic_path(folder) as tmp:
        tmp.mkdir(parents=True)
        split_entries = {}
        for name, (x, y) in splits.items():
            count = max(1, -(-len(x) // SHARD_EXAMPLES))
            shards = []
            for i in range(count):
                part = slice(i * SHARD_EXAMPLES, (i + 1) * SHARD_EXAMPLES)
                shard = tmp / f"{name}-{i:05d}-of-{count:05d}.npz"
                np.savez_compressed(shard, x=x[part], y=y[part])
                shards.append(
                    {"file": shard.name, "num_examples": len(x[part]), "sha256": sha256_file(shard)}
                )
            split_entries[name] = {
                "num_examples": len(x),
                "class_counts": np.bincount(
                    y, minlength=manifest["target"]["num_classes"]
                ).tolist(),
                "shards": shards,
            }
        write_json_atomic(tmp / MANIFEST_FILE, {**manifest, "splits": split_entries})


@dataclass
class PreparedDataset:
    """A prepared dataset on disk; split arrays are read (and verified) on demand."""

    folder: Path
    manifest: dict[str, Any]

    @property
    def classes(self) -> list[str]:
        return list(self.manifest["target"]["classes"])

    @property
    def num_classes(self) -> int:
        return int(self.manifest["target"]["num_classes"])

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.manifest["features"]["shape"])

    def num_examples(self, split: str) -> int:
        return int(self.manifest["splits"][split]["num_examples"])

    def load_split(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Read one split, checking every shard against its recorded checksum.

        Raises:
            DataError: the split is unknown, or a shard is missing or changed since prepare.
        """
        entry = self.manifest["splits"].get(split)
        if entry is None:
            raise DataError(
                f"The prepared dataset {self.folder} has no '{split}' split (it has: "
                f"{', '.join(self.manifest['splits'])})."
            )
        xs, ys = [], []
        for shard in entry["shards"]:
            path = self.folder / shard["file"]
            try:
                blob = path.read_bytes()
            except OSError:
                raise DataError(
                    f"Shard {path} listed in {MANIFEST_FILE} is missing. The prepared dataset is "
                    f"incomplete; rebuild it with `dltrain prepare --force`."
                ) from None
            if hashlib.sha256(blob).hexdigest() != shard["sha256"]:
                raise DataError(
                    f"Shard {path} changed since `dltrain prepare` wrote it (its checksum no "
                    f"longer matches {MANIFEST_FILE}). dltrain will not train or evaluate on data "
                    f"it cannot vouch for; rebuild it with `dltrain prepare --force`."
                )
            with np.load(io.BytesIO(blob), allow_pickle=False) as arrays:
                xs.append(arrays["x"])
                ys.append(arrays["y"])
        return np.concatenate(xs), np.concatenate(ys)


def open_store(folder: Path) -> PreparedDataset:
    """Open the prepared dataset in ``folder``.

    Raises:
        DataError: there is none, or its manifest is unreadable or from another version.
    """
    path = folder / MANIFEST_FILE
    if not path.is_file():
        raise DataError(
            f"No prepared dataset at {folder} (no {MANIFEST_FILE}). Run `dltrain prepare` with the "
            f"same recipe first; it writes data/<recipe name>/."
        )
    try:
        manifest = read_json(path)
    except (OSError, ValueError) as exc:
        raise DataError(
            f"{path} is unreadable ({exc}). Rebuild the dataset with `dltrain prepare --force`."
        ) from None
    if manifest.get("manifest_version") != MANIFEST_VERSION:
        raise DataError(
            f"{path} has manifest version {manifest.get('manifest_version')!r}; this dltrain reads "
            f"version {MANIFEST_VERSION}. Rebuild it with `dltrain prepare --force`."
        )
    return PreparedDataset(folder=folder, manifest=manifest)
