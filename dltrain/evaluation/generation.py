"""The generation task (GANs) in evaluate and predict: the run's discriminator judges generated
images against real ones, a sample grid shows them, and predict writes them as PNG files.

What differs lives beside the family in models/gan.py: ``Gan.generate`` (seeded noise → 0-255
pixels), ``Gan.realness`` (the discriminator's probability that an image is real),
``SampleGrid`` and ``save_png``. This module is the path evaluate and predict take for a run
whose task is ``generation``; it never branches on the family.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dltrain.atomic import atomic_path
from dltrain.errors import RunError, UsageError
from dltrain.evaluation.run_model import RunModel, open_run
from dltrain.models.gan import Gan, SampleGrid, latent_noise, save_png

Progress = Callable[[int, int], None]  # (images written, images asked for)
GRID_FILE = "samples.png"
DEFAULT_GRID_SIDE = 8  # GanSpec.samples' default, for a run whose recipe does not say
FILE_SUFFIXES = (".csv", ".jsonl", ".ndjson", ".png", ".npz")  # --output names a file, not a folder


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


@dataclass(frozen=True)
class GenerateRequest:
    """What ``predict --num-samples`` asks of a GAN run.

    Attributes:
        run_dir: the run folder.
        output: the folder to create, holding one PNG per image.
        num_samples: how many images.
        seed: fixes the images: the same seed gives the same files.
        batch_size: images per generator call.
    """

    run_dir: Path
    output: Path
    num_samples: int
    seed: int = 0
    batch_size: int = 256


@dataclass(frozen=True)
class GenerateResult:
    """The images ``generate_images`` wrote."""

    output: Path
    files: list[str]  # names inside ``output``, in generation order
    image_shape: tuple[int, int, int]  # height, width, channels
    seed: int
    task: str
    seconds: float  # generating and writing; loading TensorFlow and the model excluded

    @property
    def num_images(self) -> int:
        """How many PNG files were written."""
        return len(self.files)

    def to_json(self, run_dir: Path) -> dict[str, Any]:
        """The summary ``predict --num-samples --json`` writes to stdout."""
        return {
            "run": str(run_dir),
            "task": self.task,
            "output": str(self.output),
            "output_format": "png",
            "num_examples": self.num_images,
            "image_shape": list(self.image_shape),
            "seed": self.seed,
            "files": self.files,
            "seconds": round(self.seconds, 3),
        }


def check_generation_run(run: RunModel) -> None:
    """Refuse ``--num-samples`` for a run that does not generate.

    Raises:
        UsageError: the run's task is not ``generation``.
    """
    if run.task != "generation":
        raise UsageError(
            f"--num-samples asks a GAN run for new images, but run {run.run_dir.name} is a "
            f"{run.task} model, which answers inputs rather than generating. Drop "
            f"--num-samples and give the inputs to predict: --input FILE --output "
            f"predictions.csv."
        )


def check_output_folder(output: Path) -> None:
    """Refuse an ``--output`` that is not a new or empty folder, before any model loads.

    Raises:
        UsageError: a file, a name with a file suffix, or a folder that already holds files.
    """
    if output.suffix.lower() in FILE_SUFFIXES:
        raise UsageError(
            f"--output {output} names a {output.suffix} file, but a GAN run writes one PNG "
            f"file per generated image into a folder. Name a folder, such as --output samples."
        )
    if output.exists() and not output.is_dir():
        raise UsageError(
            f"--output {output} is an existing file; a GAN run writes its images into a folder. "
            f"Name a new folder, such as --output samples."
        )
    if output.is_dir():
        entries = sorted(p.name for p in output.iterdir())
        if entries:
            shown = ", ".join(entries[:3]) + (", …" if len(entries) > 3 else "")
            raise UsageError(
                f"--output {output} already holds {len(entries)} "
                f"{'entry' if len(entries) == 1 else 'entries'} ({shown}); predict "
                f"neither overwrites earlier images nor mixes new ones with them. Name a new "
                f"or empty folder, or remove {output} first."
            )


def generate_images(request: GenerateRequest, progress: Progress | None = None) -> GenerateResult:
    """Generate ``request.num_samples`` images with a GAN run and write them as PNG files.

    Everything that can be checked (run, task, output folder) is checked before the model
    loads. The files are written into a temporary folder beside ``request.output`` that is
    renamed into place at the end, so a failure leaves no half-filled folder.

    Raises:
        RunError: the run has no usable model or manifest.
        UsageError: the run is not a GAN; the output is a file or a folder holding files.
    """
    run = open_run(request.run_dir)
    check_generation_run(run)
    check_output_folder(request.output)
    model = as_generator(run.load_keras(), run)
    width = max(4, len(str(request.num_samples)))
    names = [f"sample-{i:0{width}d}.png" for i in range(1, request.num_samples + 1)]
    rng = np.random.default_rng(request.seed)  # batches drawn in turn: one seeded stream
    started = time.perf_counter()
    shape: tuple[int, int, int] = (0, 0, 0)
    with atomic_path(request.output) as tmp:
        tmp.mkdir()
        for start in range(0, request.num_samples, request.batch_size):
            count = min(request.batch_size, request.num_samples - start)
            pixels = model.generate(latent_noise(count, model.latent_dim, rng), run.manifest)
            shape = (int(pixels.shape[1]), int(pixels.shape[2]), int(pixels.shape[3]))
            for offset, image in enumerate(pixels):
                save_png(image, tmp / names[start + offset])
            if progress is not None:
                progress(start + count, request.num_samples)
    return GenerateResult(
        output=request.output,
        files=names,
        image_shape=shape,
        seed=request.seed,
        task=run.task,
        seconds=time.perf_counter() - started,
    )
