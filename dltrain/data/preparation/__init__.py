"""Preparing raw data, one path per kind of source.

``table/`` prepares tables (CSV/TSV/Parquet) in two streaming passes, ``series.py`` turns a table
with a time column into windows, ``arrays.py`` splits what fits in memory (IDX, ``.npz``, text
class folders) and ``image_folders.py`` image class folders, decoded a shard at a time.
``data/prepare.py`` picks the path and writes the manifest.
"""

from __future__ import annotations

from dataclasses import dataclass

from dltrain.data.profile import Profile
from dltrain.manifest import DatasetDescription


@dataclass(frozen=True)
class Prepared:
    """What a preparation path hands ``prepare``: the dataset's description (the manifest less
    its identity) and the source's profile."""

    description: DatasetDescription
    profile: Profile
