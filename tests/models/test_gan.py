"""The GAN family: shapes, one training step for each side, saving, the sample grid, and what
evaluate and predict ask of it (seeded images as pixels, the discriminator's verdict)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dltrain.backend import keras
from dltrain.models import build_model, family_task
from dltrain.models.gan import Gan, SampleGrid, latent_noise, tile, to_pixels
from dltrain.models.saving import load_model
from dltrain.recipe.models import GanSpec
from dltrain.tasks import Task
from tests.models.test_builders import image_io

SPEC = GanSpec(latent_dim=8, filters=[16, 8])
SYMMETRIC = image_io(scale=2 / 255, offset=-1.0)


def test_generator_makes_images_in_the_scaled_range() -> None:
    gan = build_model(SPEC, SYMMETRIC)
    assert isinstance(gan, Gan)
    images = np.asarray(gan.generator(np.random.default_rng(0).normal(size=(3, 8))))
    assert images.shape == (3, 28, 28, 1)
    assert images.min() >= -1.0 and images.max() <= 1.0  # tanh for [-1, 1] scaling
    assert np.asarray(gan.discriminator(images)).shape == (3, 1)


def test_one_fit_moves_both_networks_and_logs_both_losses(tmp_path: Path) -> None:
    gan = build_model(SPEC, SYMMETRIC)
    gan.compile(optimizer=keras.optimizers.Adam(2e-4), d_optimizer=keras.optimizers.Adam(2e-4))
    generator_before = [w.copy() for w in gan.generator.get_weights()]
    discriminator_before = [w.copy() for w in gan.discriminator.get_weights()]
    images = np.random.default_rng(0).integers(0, 256, size=(32, 28, 28, 1), dtype=np.uint8)
    history = gan.fit(images, np.zeros(32), batch_size=16, epochs=1, verbose=0)
    assert {"d_loss", "g_loss", "loss"} <= set(history.history)
    for before, after in (
        (generator_before, gan.generator),
        (discriminator_before, gan.discriminator),
    ):
        assert any(not np.allclose(a, b) for a, b in zip(before, after.get_weights(), strict=True))
    gan.save(tmp_path / "gan.keras")
    again = load_model(tmp_path / "gan.keras")
    noise = np.ones((2, 8), dtype="float32")
    np.testing.assert_allclose(
        np.asarray(again.generator(noise)), np.asarray(gan.generator(noise)), rtol=1e-5
    )


def test_sample_grid_is_a_png_of_pixels(tmp_path: Path) -> None:
    from PIL import Image

    gan = build_model(SPEC, SYMMETRIC)
    grid = SampleGrid(tmp_path, SYMMETRIC.manifest, side=3, latent_dim=8)
    grid.set_model(gan)
    grid.on_epoch_end(0)
    picture = Image.open(tmp_path / "epoch-0001.png")
    assert picture.size == (3 * 28, 3 * 28)
    assert to_pixels(np.array([-1.0, 0.0, 1.0]), SYMMETRIC.manifest).tolist() == [0, 128, 255]


def test_a_gan_learns_generation_whatever_the_data() -> None:
    assert family_task("gan") is Task.GENERATION
    assert family_task("autoencoder") is Task.RECONSTRUCTION
    assert family_task("cnn") is None and family_task(None) is None


def test_seeded_noise_draws_rows_in_turn() -> None:
    many = latent_noise(10, 8, seed=3)
    assert np.array_equal(latent_noise(4, 8, seed=3), many[:4])  # a grid shows the first images
    stream = np.random.default_rng(3)
    in_turn = np.concatenate([latent_noise(6, 8, stream), latent_noise(4, 8, stream)])
    assert np.array_equal(in_turn, many)  # predict's batches are one draw
    assert not np.array_equal(latent_noise(4, 8, seed=4), many[:4])


def test_generated_pixels_and_the_discriminators_verdict() -> None:
    gan = build_model(SPEC, SYMMETRIC)
    noise = latent_noise(5, 8, seed=0)
    pixels = gan.generate(noise, SYMMETRIC.manifest, batch_size=2)  # batches of 2, 2 and 1
    assert pixels.dtype == np.uint8 and pixels.shape == (5, 28, 28, 1)
    expected = to_pixels(np.asarray(gan.generator(noise, training=False)), SYMMETRIC.manifest)
    np.testing.assert_array_equal(pixels, expected)
    scores = gan.realness(pixels, batch_size=2)
    assert scores.shape == (5,) and ((scores > 0) & (scores < 1)).all()
    # the discriminator reads raw pixels through the model's own scaling, like real images
    logits = np.asarray(gan.discriminator(pixels.astype("float32") * (2 / 255) - 1.0))[:, 0]
    np.testing.assert_allclose(scores, 1 / (1 + np.exp(-logits)), rtol=1e-5)
    assert gan.realness(pixels[:0]).shape == (0,)


def test_tile_puts_images_in_rows() -> None:
    images = np.arange(4, dtype=np.uint8).reshape(4, 1, 1, 1).repeat(2, axis=1).repeat(3, axis=2)
    grid = tile(images, 2)
    assert grid.shape == (4, 6, 1)
    assert grid[:, :, 0].tolist() == [[0, 0, 0, 1, 1, 1]] * 2 + [[2, 2, 2, 3, 3, 3]] * 2
