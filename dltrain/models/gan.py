"""DCGAN on image data: a generator and a discriminator trained against each other.

The GAN is one Keras model with its own ``train_step``, so dltrain's loop (progress, history,
checkpoints, time budget, divergence guard) runs it unchanged. It takes raw images like every
dltrain model and scales them as the prepared dataset says; the generator answers in that
scale, and ``to_pixels`` turns its output back into 0-255 pixels.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from dltrain.atomic import atomic_path
from dltrain.backend import keras, tf
from dltrain.data.store import PreparedDataset
from dltrain.manifest import FeatureKind, ImagePreprocessing, Manifest
from dltrain.models.io import ModelIO
from dltrain.recipe.models import GanSpec
from dltrain.recipe.schema import TrainSpec
from dltrain.runs import RunFolder
from dltrain.training.callbacks import Logs
from dltrain.training.compile import CompileParts
from dltrain.training.hooks import TrainingHooks
from dltrain.training.optimizers import make_optimizer


@keras.saving.register_keras_serializable(package="dltrain")
class Gan(keras.Model):
    """Generator + discriminator; ``fit`` on batches of (raw images, anything)."""

    def __init__(
        self,
        generator: keras.Model,
        discriminator: keras.Model,
        scaler: keras.layers.Layer,
        latent_dim: int,
        label_smoothing: float = 0.1,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.scaler = scaler
        self.latent_dim = latent_dim
        self.label_smoothing = label_smoothing
        self.seed_generator = keras.random.SeedGenerator(1337)
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.d_optimizer: keras.optimizers.Optimizer | None = None

    def compile(
        self,
        optimizer: keras.optimizers.Optimizer,
        d_optimizer: keras.optimizers.Optimizer | None = None,
        **kwargs: Any,
    ) -> None:
        """``optimizer`` trains the generator (and is what the logs' learning rate shows)."""
        super().compile(optimizer=optimizer, **kwargs)
        self.d_optimizer = d_optimizer or keras.optimizers.Adam(
            float(keras.ops.convert_to_numpy(optimizer.learning_rate))
        )

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return [self.d_loss_tracker, self.g_loss_tracker]

    def call(self, noise: Any, training: bool = False) -> Any:
        return self.generator(noise, training=training)

    def _noise(self, batch: Any) -> Any:
        return keras.random.normal((batch, self.latent_dim), seed=self.seed_generator)

    def _adversarial_losses(self, real: Any, training: bool) -> tuple[Any, Any, Any]:
        bce = keras.losses.binary_crossentropy
        fake = self.generator(self._noise(tf.shape(real)[0]), training=training)
        real_logits = self.discriminator(real, training=training)
        fake_logits = self.discriminator(fake, training=training)
        smoothed = tf.ones_like(real_logits) * (1.0 - self.label_smoothing)
        d_loss = tf.reduce_mean(bce(smoothed, real_logits, from_logits=True)) + tf.reduce_mean(
            bce(tf.zeros_like(fake_logits), fake_logits, from_logits=True)
        )
        g_loss = tf.reduce_mean(bce(tf.ones_like(fake_logits), fake_logits, from_logits=True))
        return d_loss, g_loss, fake

    def train_step(self, data: Any) -> dict[str, Any]:
        real = self.scaler(data[0] if isinstance(data, tuple) else data)
        assert self.d_optimizer is not None, "compile the GAN first"
        with tf.GradientTape() as tape:
            d_loss, _, _ = self._adversarial_losses(real, training=True)
        weights = self.discriminator.trainable_weights
        self.d_optimizer.apply_gradients(zip(tape.gradient(d_loss, weights), weights, strict=True))
        with tf.GradientTape() as tape:
            _, g_loss, _ = self._adversarial_losses(real, training=True)
        weights = self.generator.trainable_weights
        self.optimizer.apply_gradients(zip(tape.gradient(g_loss, weights), weights, strict=True))
        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(g_loss)
        # "loss" too, so the divergence guard and the progress line read it like any model's
        return {"loss": d_loss + g_loss, "d_loss": d_loss, "g_loss": g_loss}

    def test_step(self, data: Any) -> dict[str, Any]:
        real = self.scaler(data[0] if isinstance(data, tuple) else data)
        d_loss, g_loss, _ = self._adversarial_losses(real, training=False)
        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(g_loss)
        return {"loss": d_loss + g_loss, "d_loss": d_loss, "g_loss": g_loss}

    def generate(self, noise: np.ndarray, manifest: Manifest, batch_size: int = 256) -> np.ndarray:
        """One generated image per row of ``noise``, as 0-255 pixels like the training data's.

        Args:
            noise: latent vectors, shape (n, latent_dim) (``latent_noise`` makes them).
            manifest: the prepared dataset's manifest, whose scaling the generator answers in.
            batch_size: images per generator call.

        Returns:
            uint8 images, shape (n, height, width, channels).
        """
        batches = [
            np.asarray(self.generator(noise[start : start + batch_size], training=False))
            for start in range(0, len(noise), batch_size)
        ]
        return to_pixels(np.concatenate(batches), manifest)

    def realness(self, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """The discriminator's probability that each image is real.

        Args:
            images: raw 0-255 images, shape (n, height, width, channels): real ones as the
                data holds them, or generated ones as ``generate`` gives them.
            batch_size: images per discriminator call.

        Returns:
            float64 probabilities, shape (n,).
        """
        logits = [
            np.asarray(
                self.discriminator(self.scaler(images[start : start + batch_size]), training=False)
            )
            for start in range(0, len(images), batch_size)
        ]
        if not logits:
            return np.empty(0)
        # the logistic function written with tanh, which cannot overflow for large logits
        return 0.5 * (1.0 + np.tanh(np.concatenate(logits).astype(np.float64).reshape(-1) / 2))

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "generator": keras.saving.serialize_keras_object(self.generator),
            "discriminator": keras.saving.serialize_keras_object(self.discriminator),
            "scaler": keras.saving.serialize_keras_object(self.scaler),
            "latent_dim": self.latent_dim,
            "label_smoothing": self.label_smoothing,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Gan:
        for key in ("generator", "discriminator", "scaler"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


def build_gan(spec: GanSpec, io: ModelIO) -> Gan:
    """Build a DCGAN for the prepared images (labels unused)."""
    io.require("gan", FeatureKind.IMAGE)
    height, width, channels = io.image_features.shape
    preprocessing = io.manifest.preprocessing_as(ImagePreprocessing)
    scaler = keras.layers.Rescaling(preprocessing.scale, preprocessing.offset, name="scaling")
    low, high = io.image_value_range()
    # the generator must answer in the same range as the scaled real images
    activation = (
        "tanh" if (low, high) == (-1.0, 1.0) else "sigmoid" if (low, high) == (0.0, 1.0) else None
    )

    ups = len(spec.filters)
    start_h, start_w = math.ceil(height / 2**ups), math.ceil(width / 2**ups)
    noise = keras.Input((spec.latent_dim,), name="noise")
    x = keras.layers.Dense(start_h * start_w * spec.filters[0], name="project")(noise)
    x = keras.layers.Reshape((start_h, start_w, spec.filters[0]), name="seed_image")(x)
    for i, filters in enumerate(spec.filters, start=1):
        x = keras.layers.Conv2DTranspose(
            filters, 4, strides=2, padding="same", use_bias=False, name=f"up{i}"
        )(x)
        x = keras.layers.BatchNormalization(momentum=spec.batch_norm_momentum, name=f"up{i}_bn")(x)
        x = keras.layers.LeakyReLU(0.2, name=f"up{i}_act")(x)
    x = keras.layers.Conv2D(
        channels, 3, padding="same", activation=activation, dtype="float32", name="image"
    )(x)
    if (start_h * 2**ups, start_w * 2**ups) != (height, width):
        x = keras.layers.Resizing(height, width, name="fit_size")(x)
    generator = keras.Model(noise, x, name="generator")

    image = keras.Input((height, width, channels), name="image")
    y = image
    for i, filters in enumerate(reversed(spec.filters), start=1):
        y = keras.layers.Conv2D(filters, 4, strides=2, padding="same", name=f"down{i}")(y)
        y = keras.layers.LeakyReLU(0.2, name=f"down{i}_act")(y)
        if spec.dropout:
            y = keras.layers.Dropout(spec.dropout, name=f"down{i}_dropout")(y)
    y = keras.layers.Flatten(name="flatten")(y)
    logit = keras.layers.Dense(1, dtype="float32", name="real_logit")(y)
    discriminator = keras.Model(image, logit, name="discriminator")

    gan = Gan(generator, discriminator, scaler, spec.latent_dim, spec.label_smoothing, name="gan")
    gan.build((None, spec.latent_dim))
    return gan


def to_pixels(images: np.ndarray, manifest: Manifest) -> np.ndarray:
    """Generator output (scaled) → uint8 pixels, undoing the dataset's scaling."""
    preprocessing = manifest.preprocessing_as(ImagePreprocessing)
    raw = (images - preprocessing.offset) / preprocessing.scale
    return np.clip(np.rint(raw), 0, 255).astype(np.uint8)


def latent_noise(num: int, latent_dim: int, seed: int | np.random.Generator) -> np.ndarray:
    """Standard normal latent vectors, shape (num, latent_dim), fixed by ``seed``.

    Rows are drawn one after another, so the first k rows from a seed do not depend on
    ``num``, and batches drawn in turn from one ``np.random.Generator`` are the rows of one
    large draw: a grid of k images shows the first k of any batch made from the same seed.

    Args:
        num: how many vectors.
        latent_dim: the generator's noise size.
        seed: an int, or a generator to continue drawing from.
    """
    return np.random.default_rng(seed).normal(size=(num, latent_dim)).astype("float32")


def tile(images: np.ndarray, side: int) -> np.ndarray:
    """``side`` × ``side`` images (n, h, w, c), n = side², as one picture (side·h, side·w, c)."""
    _, h, w, c = images.shape
    grid = images.reshape(side, side, h, w, c).transpose(0, 2, 1, 3, 4)
    return grid.reshape(side * h, side * w, c)


def save_png(image: np.ndarray, path: Path) -> Path:
    """Write one uint8 image (h, w, c) as a PNG, atomically; one channel is saved as grey.

    Returns:
        ``path``.
    """
    from PIL import Image

    picture = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
    with atomic_path(path) as tmp:
        picture.save(tmp, format="PNG")
    return path


class SampleGrid(keras.callbacks.Callback):
    """Saves a grid of generated images, always from the same noise, after every epoch.

    Args:
        folder: where the grids go, one PNG per epoch.
        manifest: the prepared dataset's manifest (its scaling turns output into pixels).
        side: the grid is ``side`` × ``side`` images.
        latent_dim: the generator's noise size.
        seed: fixes the noise.
    """

    def __init__(
        self, folder: Path, manifest: Manifest, side: int, latent_dim: int, seed: int = 0
    ) -> None:
        super().__init__()
        self.folder = folder
        self.manifest = manifest
        self.side = side
        self.noise = latent_noise(side * side, latent_dim, seed)

    def write(self, gan: Gan, path: Path) -> Path:
        """Save the grid ``gan`` makes from this grid's noise as the PNG ``path``.

        Returns:
            ``path``.
        """
        return save_png(tile(gan.generate(self.noise, self.manifest), self.side), path)

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        from PIL import Image

        images = to_pixels(
            np.asarray(self.model.generator(self.noise, training=False)), self.manifest
        )
        n, h, w, c = images.shape
        grid = images.reshape(self.side, self.side, h, w, c).transpose(0, 2, 1, 3, 4)
        grid = grid.reshape(self.side * h, self.side * w, c)
        picture = Image.fromarray(grid[..., 0] if c == 1 else grid)
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.folder / f"epoch-{epoch + 1:04d}.png") as tmp:
            picture.save(tmp, format="PNG")


class GanTraining(TrainingHooks):
    """A GAN learns to make images like the data's: labels are unused, two optimizers take
    turns, and a grid of samples is saved after every epoch."""

    spec: GanSpec
    single_machine_reason = (
        "its adversarial steps are not written for gradients summed across machines"
    )
    range_test_reason = (
        "its two networks take turns with two optimizers, so there is no one loss that falls "
        "as one learning rate grows"
    )

    def averaging_reason(self, train: TrainSpec) -> str | None:
        return "its generator and discriminator take turns with two optimizers"

    def labels(self, y: np.ndarray) -> np.ndarray:
        """Zeros: ``fit`` wants labels, and the adversarial steps ignore them."""
        return np.zeros(len(y), dtype="float32")

    def compile(self, model: keras.Model, parts: CompileParts, train: TrainSpec) -> None:
        """The run's optimizer for the generator; the discriminator's at its own rate."""
        rate = self.spec.discriminator_learning_rate or train.optimizer.learning_rate
        d_spec = train.optimizer.model_copy(update={"learning_rate": rate})
        model.compile(optimizer=parts.optimizer, d_optimizer=make_optimizer(d_spec, rate))

    def build_optimizers(self, model: keras.Model) -> None:
        """Each optimizer over the network it trains, as ``Gan.train_step`` applies them."""
        model.optimizer.build(model.generator.trainable_weights)
        model.d_optimizer.build(model.discriminator.trainable_weights)

    def callbacks(
        self, files: RunFolder, dataset: PreparedDataset
    ) -> list[keras.callbacks.Callback]:
        """The sample grid, in samples/ of the run folder."""
        return [
            SampleGrid(
                files.samples,
                dataset.manifest,
                self.spec.samples,
                self.spec.latent_dim,
            )
        ]
