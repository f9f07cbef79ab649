"""The vocabulary of a text dataset, fitted on its training texts.

The vocabulary comes from Keras's own ``TextVectorization.adapt``, so the tokens stored in the
manifest are standardised, split and joined into n-grams exactly as the model's TextVectorization
layer will do it at prediction time.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dltrain.errors import DataError
from dltrain.manifest import TextBag, TextFeatures, TextPreprocessing
from dltrain.recipe.data import Sampling, Standardize, TextBagSpec, TextSpec

MIN_SEQUENCE, MAX_SEQUENCE = 8, 512
RESERVED_TOKENS = 2  # TextVectorization's padding "" and out-of-vocabulary "[UNK]"
BATCH = 1024


def describe_texts(
    texts: list[str], spec: TextSpec, column: str, sampling: Sampling
) -> tuple[TextFeatures, TextPreprocessing]:
    """The manifest's features and preprocessing of texts, fitted on the training texts: the
    vocabulary (with n-grams per ``spec.ngrams``), the sequence length and each entry's idf;
    with ``spec.bag``, the second view's vocabulary and idf too.

    Raises:
        DataError: no training text has a single token.
    """
    vocabulary, length = fit_vocabulary(texts, spec)
    features = TextFeatures(
        column=column, vocabulary_size=len(vocabulary) + RESERVED_TOKENS, sequence_length=length
    )
    preprocessing = TextPreprocessing(
        vocabulary=vocabulary,
        standardize=spec.standardize,
        sequence_length=length,
        sampling=sampling,
        split=spec.split,
        ngrams=spec.ngrams,
        idf=inverse_document_frequency(texts, vocabulary, spec),
        bag=None if spec.bag is None else fit_bag(texts, spec.bag),
    )
    return features, preprocessing


def fit_bag(texts: list[str], spec: TextBagSpec) -> TextBag:
    """The second view of ``data.text.bag``: its own vocabulary and idf on the training texts.

    Raises:
        DataError: no training text has a single entry.
    """
    vocabulary = _adapt(texts, spec)
    return TextBag(
        vocabulary=vocabulary,
        standardize=spec.standardize,
        split=spec.split,
        ngrams=spec.ngrams,
        idf=inverse_document_frequency(texts, vocabulary, spec),
    )


def fit_vocabulary(texts: list[str], spec: TextSpec) -> tuple[list[str], int]:
    """The training texts' vocabulary (most frequent first) and a sequence length.

    Returns:
        ``(tokens, sequence_length)``: tokens without TextVectorization's two reserved entries;
        the length is ``spec.sequence_length`` or the 95th percentile of the training texts'
        token counts (n-grams included), between 8 and 512.

    Raises:
        DataError: no training text has a single token.
    """
    from dltrain.backend import keras, tf

    vocabulary = _adapt(texts, spec)
    if spec.sequence_length is not None:
        return vocabulary, spec.sequence_length
    ragged = keras.layers.TextVectorization(vocabulary=vocabulary, ragged=True, **_splitting(spec))
    lengths: list[int] = []
    for start in range(0, len(texts), 4096):
        tokens = ragged(tf.constant(np.asarray(texts[start : start + 4096], dtype=object)))
        lengths.extend(tokens.row_lengths().numpy().tolist())
    length = int(np.percentile(lengths, 95)) if lengths else MIN_SEQUENCE
    return vocabulary, int(np.clip(length, MIN_SEQUENCE, MAX_SEQUENCE))


def _adapt(texts: list[str], spec: TextSpec | TextBagSpec) -> list[str]:
    """The ``spec.max_tokens`` most frequent entries of the training texts, most frequent first,
    without TextVectorization's two reserved entries."""
    from dltrain.backend import keras, tf

    layer = keras.layers.TextVectorization(
        max_tokens=spec.max_tokens, output_mode="int", **_splitting(spec)
    )
    layer.adapt(tf.data.Dataset.from_tensor_slices(np.asarray(texts, dtype=object)).batch(2048))
    vocabulary = [str(t) for t in layer.get_vocabulary()[RESERVED_TOKENS:]]
    if not vocabulary:
        raise DataError(
            f"The training texts hold no words once standardised ({spec.standardize.value}). "
            "Check `data.target` names the label and the text column holds the text."
        )
    return vocabulary


def inverse_document_frequency(
    texts: list[str], vocabulary: list[str], spec: TextSpec | TextBagSpec
) -> list[float]:
    """Each vocabulary entry's ``log(1 + texts / (1 + texts holding it))`` over the training
    texts: Keras's own TF-IDF weighting, for the bag encoder's ``output_mode: tf_idf``."""
    from dltrain.backend import keras, tf

    hot = keras.layers.TextVectorization(
        vocabulary=vocabulary, output_mode="multi_hot", **_splitting(spec)
    )
    counts = np.zeros(len(vocabulary) + 1, dtype=np.float64)  # [UNK] first
    for start in range(0, len(texts), BATCH):
        batch = tf.constant(np.asarray(texts[start : start + BATCH], dtype=object))
        counts += np.asarray(hot(batch)).sum(axis=0)
    idf = np.log1p(len(texts) / (1.0 + counts[1:]))
    return [round(float(v), 6) for v in idf]


def _splitting(spec: TextSpec | TextBagSpec) -> dict[str, Any]:
    """The TextVectorization settings that turn a text into tokens, as the model's layer has
    them (``models/encoders.py``)."""
    standardize = None if spec.standardize == Standardize.NONE else spec.standardize.value
    return {
        "standardize": standardize,
        "split": spec.split.value,
        "ngrams": spec.ngrams if spec.ngrams > 1 else None,
    }
