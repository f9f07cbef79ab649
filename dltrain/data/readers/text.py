"""Text class folders: ``[train/]<class>/*.txt`` (and ``test/<class>/``), read as UTF-8 strings."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dltrain.data.readers.arrays import SourceArrays
from dltrain.data.readers.formats import class_folders
from dltrain.errors import DataError
from dltrain.recipe.data import DataFormat


def read_text_folders(root: Path) -> SourceArrays:
    """Read ``[train/]<class>/*.txt`` (and ``test/<class>/*.txt``) into strings and labels.

    Raises:
        DataError: no class folders, an empty class, or a file that is not UTF-8 text.
    """
    layout = class_folders(root, frozenset({".txt"}), "text")
    splits = {}
    files: list[Path] = []
    for split, per_class in layout.splits.items():
        texts: list[str] = []
        labels: list[int] = []
        for index, name in enumerate(layout.classes):
            for path in per_class.get(name, []):
                try:
                    texts.append(path.read_text(encoding="utf-8"))
                except UnicodeDecodeError as exc:
                    raise DataError(
                        f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}). Expected "
                        f"UTF-8 .txt files; re-save the file as UTF-8 (iconv -t utf-8)."
                    ) from None
                labels.append(index)
                files.append(path)
        splits[split] = (np.asarray(texts, dtype=object), np.asarray(labels, dtype=np.int64))
    return SourceArrays(
        splits=splits, files=files, format=DataFormat.TEXT, class_names=layout.classes
    )
