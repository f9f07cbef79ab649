"""Text: folders of ``.txt`` files per class, and the vocabulary fitted on training texts.

The vocabulary comes from Keras's own ``TextVectorization.adapt``, so the tokens stored in the
manifest are standardised and split exactly as the model's TextVectorization layer will do it at
prediction time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dltrain.data.sources import SourceArrays, class_folders
from dltrain.errors import DataError
from dltrain.recipe.data import DataFormat, Standardize, TextSpec

MIN_SEQUENCE, MAX_SEQUENCE = 8, 512
RESERVED_TOKENS = 2  # TextVectorization's padding "" and out-of-vocabulary "[UNK]"


def read_text_folders(root: Path) -> SourceArrays:
    """Read ``[train/]<class>/*.txt`` (and ``test/<class>/*.txt``) into strings and labels.

    Raises:
        DataError: no class folders, an empty class, or a file that is not UTF-8 text.
    """
    layout = class_folders(root, (".txt",), "text")
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


def fit_vocabulary(texts: list[str], spec: TextSpec) -> tuple[list[str], int]:
    """The training texts' vocabulary (most frequent first) and a sequence length.

    Returns:
        ``(tokens, sequence_length)``: tokens without TextVectorization's two reserved entries;
        the length is ``spec.sequence_length`` or the 95th percentile of the training texts'
        token counts, between 8 and 512.

    Raises:
        DataError: no training text has a single token.
    """
    from dltrain.backend import keras, tf

    layer = keras.layers.TextVectorization(
        max_tokens=spec.max_tokens,
        standardize=None if spec.standardize == Standardize.NONE else spec.standardize.value,
        output_mode="int",
    )
    layer.adapt(tf.data.Dataset.from_tensor_slices(np.asarray(texts, dtype=object)).batch(2048))
    vocabulary = [str(t) for t in layer.get_vocabulary()[RESERVED_TOKENS:]]
    if not vocabulary:
        raise DataError(
            "The training texts hold no words once standardised (lower case, punctuation "
            "removed). Check `data.target` names the label and the text column holds the text."
        )
    if spec.sequence_length is not None:
        return vocabulary, spec.sequence_length
    ragged = keras.layers.TextVectorization(
        vocabulary=vocabulary,
        standardize=None if spec.standardize == Standardize.NONE else spec.standardize.value,
        ragged=True,
    )
    lengths: list[int] = []
    for start in range(0, len(texts), 4096):
        tokens = ragged(tf.constant(np.asarray(texts[start : start + 4096], dtype=object)))
        lengths.extend(tokens.row_lengths().numpy().tolist())
    length = int(np.percentile(lengths, 95)) if lengths else MIN_SEQUENCE
    return vocabulary, int(np.clip(length, MIN_SEQUENCE, MAX_SEQUENCE))
