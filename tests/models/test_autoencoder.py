"""Autoencoders: the output is each example's reconstruction error, and training lowers it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dltrain.models import build_model
from dltrain.models.autoencoder import reconstruction_loss
from dltrain.models.saving import load_model
from dltrain.recipe.models import AutoencoderSpec
from tests.models.test_builders import image_io


@pytest.mark.parametrize("architecture", ["dense", "conv"])
def test_score_is_the_mean_squared_error_of_the_reconstruction(architecture: str) -> None:
    model = build_model(
        AutoencoderSpec(architecture=architecture, filters=[4, 8], units=[16], latent_dim=4),
        image_io(),
    )
    images = np.random.default_rng(0).integers(0, 256, size=(3, 28, 28, 1), dtype=np.uint8)
    score = np.asarray(model(images))
    assert score.shape == (3,)
    reconstruction_layer = model.get_layer(
        "crop" if architecture == "conv" else "reconstruction_shape"
    )
    probe = type(model)(
        model.input, [reconstruction_layer.output, model.get_layer("scaling").output]
    )
    reconstruction, target = (np.asarray(t) for t in probe(images))
    np.testing.assert_allclose(
        score, ((reconstruction - target) ** 2).mean(axis=(1, 2, 3)), rtol=1e-5
    )


def test_training_lowers_the_error_and_the_model_reloads(tmp_path: Path) -> None:
    model = build_model(AutoencoderSpec(units=[32], latent_dim=8), image_io())
    model.compile(optimizer="adam", loss=reconstruction_loss)
    rng = np.random.default_rng(1)
    pattern = rng.integers(0, 256, size=(1, 28, 28, 1))
    images = np.clip(pattern + rng.integers(-10, 10, size=(64, 28, 28, 1)), 0, 255).astype(np.uint8)
    before = float(np.mean(model.predict(images, verbose=0)))
    model.fit(images, np.zeros(64), epochs=30, batch_size=16, verbose=0)
    after = float(np.mean(model.predict(images, verbose=0)))
    assert after < before / 2
    model.save(tmp_path / "ae.keras")
    np.testing.assert_allclose(
        load_model(tmp_path / "ae.keras").predict(images, verbose=0),
        model.predict(images, verbose=0),
        rtol=1e-5,
    )
