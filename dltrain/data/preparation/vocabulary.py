"""The vocabulary of a text dataset, fitted on its training texts.

The vocabulary comes from Keras's own ``TextVectorization.adapt``, so the tokens stored in the
manifest are standardised and split exactly as the model's TextVectorization layer will do it at
prediction time.
"""

from __future__ import annotations

import numpy as np

from dltrain.errors import DataError
from dltrain.recipe.data import Standardize, TextSpec

MIN_SEQUENCE, MAX_SEQUENCE = 8, 512
RESERVED_TOKENS = 2  # TextVectorization's padding "" and out-of-vocabulary "[UNK]"


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
