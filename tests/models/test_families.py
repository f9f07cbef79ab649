"""The rnn and text families, CNN options (residual, pooling, augmentation) and regularisation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from dltrain.backend import keras
from dltrain.models import build_model
from dltrain.models.io import ModelIO
from dltrain.recipe.models import AugmentationSpec, CnnSpec, MlpSpec, RnnSpec, TextSpec
from tests.manifests import manifest_of
from tests.models.test_builders import image_io


@dataclass(frozen=True)
class StubIO(ModelIO):
    """A ModelIO whose inputs are given, so builders can be tested before a data kind exists."""

    shape: tuple[int, ...] = ()
    dtype: str = "float32"

    def inputs(self) -> tuple[Any, Any]:
        raw = keras.Input(shape=self.shape, dtype=self.dtype, name="input")
        return raw, raw


def stub(kind: str, shape: tuple[int, ...], dtype: str, **features: Any) -> StubIO:
    if kind in ("image", "sequence"):
        features |= {"shape": list(shape), "dtype": dtype}
    manifest = manifest_of(
        "multiclass",
        features={"kind": kind, **features},
        target={"classes": ["a", "b", "c"], "num_classes": 3},
    )
    return StubIO(manifest, shape=shape, dtype=dtype)


@pytest.mark.parametrize(
    "spec",
    [
        RnnSpec(cell="lstm", units=[8, 4]),
        RnnSpec(cell="gru", units=[4], bidirectional=True, dense=[4], dropout=0.1),
        RnnSpec(cell="simple", units=[4], batch_norm=True),
    ],
    ids=["lstm-stacked", "gru-bidirectional", "simple-bn"],
)
def test_rnn_family_on_windows(spec: RnnSpec) -> None:
    model = build_model(spec, stub("sequence", (10, 2), "float32"))
    windows = np.random.default_rng(0).normal(size=(5, 10, 2)).astype("float32")
    assert np.asarray(model(windows)).shape == (5, 3)
    cells = [getattr(layer, "forward_layer", layer) for layer in model.layers[1:]]
    assert sum(spec.cell.value in layer.name for layer in cells) == len(spec.units)


@pytest.mark.parametrize("encoder", ["conv", "bilstm", "attention"])
def test_text_family_on_token_ids(encoder: str) -> None:
    io = stub("text", (12,), "int64", vocabulary_size=50, sequence_length=12)
    model = build_model(TextSpec(encoder=encoder, embedding_dim=8, num_heads=2), io)
    tokens = np.random.default_rng(0).integers(1, 50, size=(4, 12))
    tokens[:, 8:] = 0  # padding
    probabilities = np.asarray(model(tokens))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_text_attention_ignores_padding() -> None:
    io = stub("text", (6,), "int64", vocabulary_size=20, sequence_length=6)
    model = build_model(TextSpec(encoder="conv", embedding_dim=4, dropout=0.0), io)
    assert model.get_layer("embedding").input_dim == 20


def test_residual_cnn_with_global_pooling_and_spatial_dropout() -> None:
    spec = CnnSpec(
        filters=[4, 8],
        convs_per_block=2,
        residual=True,
        global_pooling=True,
        block_dropout=0.1,
        spatial_dropout=True,
    )
    model = build_model(spec, image_io())
    names = [layer.name for layer in model.layers]
    assert {"block1_add", "block2_add", "block1_projection", "global_pool"} <= set(names)
    assert "flatten" not in names
    assert type(model.get_layer("block1_dropout")).__name__ == "SpatialDropout2D"
    assert np.asarray(model(np.zeros((2, 28, 28, 1), np.uint8))).shape == (2, 10)


def test_residual_needs_same_padding() -> None:
    with pytest.raises(ValueError, match="padding: same"):
        CnnSpec(residual=True, padding="valid")


def test_augmentation_acts_in_training_only() -> None:
    augmentation = AugmentationSpec(
        flip="horizontal", rotation=0.2, zoom=0.2, translation=0.1, contrast=0.3
    )
    model = build_model(CnnSpec(filters=[2], augmentation=augmentation), image_io())
    first = model.layers[2]
    assert first.name.startswith("augment_")
    images = np.random.default_rng(0).integers(0, 256, size=(4, 28, 28, 1), dtype=np.uint8)
    scaled = np.asarray(model.get_layer("scaling")(images))
    augmented = keras.Model(model.input, model.get_layer("augment_contrast").output)
    np.testing.assert_allclose(np.asarray(augmented(images, training=False)), scaled, rtol=1e-6)
    assert not np.allclose(np.asarray(augmented(images, training=True)), scaled)


def test_l1_l2_penalties_reach_the_loss() -> None:
    plain = build_model(MlpSpec(units=[4]), image_io())
    penalised = build_model(MlpSpec(units=[4, 4], l1=0.01, l2=0.01), image_io())
    assert plain.losses == []
    assert len(penalised.losses) == 2  # one per hidden layer; the output layer is left free
