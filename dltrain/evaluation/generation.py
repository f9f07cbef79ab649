"""The generation task (GANs) in evaluate: the run's discriminator judges generated images
against real ones, and a sample grid shows them.

What differs lives beside the family in models/gan.py: ``Gan.generate`` (seeded noise → 0-255
pixels), ``Gan.realness`` (the discriminator's probability that an image is real) and
``SampleGrid``. This module is the path evaluate takes for a run whose task is ``generation``;
it never branches on the family.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dltrain.errors import RunError
from dltrain.evaluation.run_model import RunModel
from dltrain.models.gan import Gan, SampleGrid, latent_noise

GRID_FILE = "samples.png"
DEFAULT_GRID_SIDE = 8  # GanSpec.samples' default, for a run whose recipe does not say


def as_generator(model: Any, run: RunModel) -> Gan:
    """``model``, checked to be a GAN: what a generation run's model.keras must hold.

    Raises:
        RunError: the model is not a generator and discriminator pair (a damaged or foreign
            model.keras in a generation run).
    """
    if not isinstance(model, Gan):
        raise RunError(
            f"Run {run.run_dir.name} is a generation run, but its {run.files.model.name} holds "
            f"a {type(model).__name__}, not a GAN (a generator and a discriminator). The file "
            f"was replaced or damaged; train the run again."
        )
    return model


def judge(model: Gan, run: RunModel, real: np.ndarray, seed: int, batch_size: int) -> np.ndarray:
    """The discriminator's scores of the real images and of as many generated ones.

    Args:
        model: the run's GAN.
        run: the run (its manifest turns generator output into pixels).
        real: raw real images, shape (n, height, width, channels).
        seed: fixes the generated images.
        batch_size: images per model call.

    Returns:
        Shape (n, 2): the probability that real image i is real, then that generated image i
        is. The generated images are judged as the 0-255 pixels predict would write.
    """
    noise = latent_noise(len(real), model.latent_dim, seed)
    fakes = model.generate(noise, run.manifest, batch_size)
    return np.stack([model.realness(real, batch_size), model.realness(fakes, batch_size)], axis=1)


def write_sample_grid(model: Gan, run: RunModel, folder: Path, seed: int) -> Path:
    """Save a grid of generated images as ``folder``/samples.png.

    The grid is as wide as the training grids (the recipe's ``model.samples``) and comes from
    ``seed``'s noise, so it shows the first of the images ``judge`` scored with that seed.

    Returns:
        The PNG written.
    """
    side = int(run.model_settings().get("samples") or DEFAULT_GRID_SIDE)
    grid = SampleGrid(folder, run.manifest, side, model.latent_dim, seed)
    return grid.write(model, folder / GRID_FILE)
