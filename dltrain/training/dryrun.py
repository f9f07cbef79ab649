"""`dltrain train --dry-run`: what a run would do, without training."""

from __future__ import annotations

import contextlib
import math
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dltrain.backend import GPUS, keras
from dltrain.errors import RecipeError
from dltrain.models import build_model, training_hooks
from dltrain.models.io import ModelIO
from dltrain.recipe import LoadedRecipe
from dltrain.recipe.choices import OptimizerName
from dltrain.recipe.models import ModelSpec
from dltrain.recipe.schema import TrainSpec
from dltrain.training.device import plan_devices
from dltrain.training.optimizers import make_schedule
from dltrain.training.plan import check_monitor, epoch_steps, open_prepared
from dltrain.training.schedules import find_time_paced

if TYPE_CHECKING:
    from dltrain.training.epoch_time import EpochTime

WEIGHT_BYTES = 4  # variables stay float32, mixed precision or not
# Values an optimizer keeps per weight: Adam's two moments, a momentum, an accumulator.
_OPTIMIZER_SLOTS = {
    OptimizerName.SGD: 0,  # its momentum defaults to 0: no slot
    OptimizerName.MOMENTUM: 1,
    OptimizerName.NESTEROV: 1,
    OptimizerName.ADAGRAD: 1,
    OptimizerName.RMSPROP: 1,
    OptimizerName.ADAM: 2,
    OptimizerName.ADAMW: 2,
    OptimizerName.NADAM: 2,
    OptimizerName.ADAMAX: 2,
}


@dataclass(frozen=True)
class MemoryBudget:
    """The most memory one copy of the model may take here, and what holds it."""

    bytes: int
    where: str  # "GPU memory (80.0 GiB)", "RAM (23.4 GiB)"


@dataclass(frozen=True)
class ModelSize:
    """What the recipe's model takes, measured without allocating it."""

    summary: list[str]  # Keras's model summary, one line per item
    parameters: int
    trainable_parameters: int
    activation_bytes: int  # per batch, forward activations kept for the backward pass
    weight_bytes: int  # the weights alone, float32
    training_bytes: int  # weights, gradients, optimizer slots and a batch's activations
    memory: MemoryBudget


@dataclass(frozen=True)
class DryRun:
    size: ModelSize
    steps_per_epoch: int
    learning_rates: list[tuple[int, float]]  # (epoch, rate at its start), and the last step
    device: str
    timing: EpochTime | None = None  # a few timed steps: the time an epoch takes
    not_timed: str | None = None  # why there is no timing


def dry_run(loaded: LoadedRecipe, workdir: Path) -> DryRun:
    """Measure the model and schedule the recipe describes and refuse a model this machine
    cannot train; then, for a model of sane size, time a few training steps on the prepared
    data (training/epoch_time.py) to estimate an epoch. Nothing is written or kept.

    Raises:
        DataError: no usable prepared dataset (the model's shape comes from it).
        RecipeError: a setting that does not fit the data, or a model whose weights and training
            state do not fit in this machine's memory.
    """
    recipe = loaded.recipe
    spec = recipe.train
    dataset = open_prepared(loaded, workdir)
    if spec.early_stopping.enabled:
        # the family's task, as train checks it: an autoencoder logs no accuracy
        check_monitor(spec.early_stopping.monitor, training_hooks(recipe.model).task(dataset))
    plan = plan_devices(spec)
    size = measure_model(recipe.model, spec, ModelIO(dataset.manifest), plan.mixed_precision)
    steps = epoch_steps(dataset, spec.batch_size)
    from dltrain.training.epoch_time import time_epoch, timing_refusal

    not_timed = timing_refusal(size, multiworker=plan.cluster is not None)
    timing = None if not_timed else time_epoch(loaded, workdir)
    return DryRun(
        size=size,
        steps_per_epoch=steps,
        learning_rates=planned_rates(spec, steps, timing),
        device=plan.description,
        timing=timing,
        not_timed=not_timed,
    )


def measure_model(
    model_spec: ModelSpec, spec: TrainSpec, io: ModelIO, mixed_precision: bool
) -> ModelSize:
    """The size of the model ``model_spec`` describes and the memory training it takes,
    measured without allocating one weight.

    Args:
        model_spec: the recipe's model section.
        spec: the recipe's train section (optimizer and batch size).
        io: the model's inputs and head, from the prepared dataset.
        mixed_precision: activations in float16 (weights stay float32).

    Returns:
        The counts, the memory estimate and the budget it was checked against.

    Raises:
        RecipeError: training it needs more memory than this machine has.
    """
    summary: list[str] = []
    # In a stateless scope Keras defers every variable's initial value (initialize_variables=
    # False: for good), so shapes and counts come without allocating a weight: a model of
    # terabytes is measured in milliseconds instead of being allocated until the machine fails.
    with _deferred_variables_forgotten(), keras.StatelessScope(initialize_variables=False):
        model = build_model(model_spec, io)
        model.summary(print_fn=lambda line, **_: summary.append(line))
        parameters = int(model.count_params())
        trainable = int(sum(math.prod(w.shape) for w in model.trainable_weights))
        values = sum(_output_values(layer) for layer in model.layers[1:])
        sizes = ((sum(math.prod(w.shape) for w in x.weights), x.name) for x in model.layers)
        widest = sorted(sizes, reverse=True)
    activation_bytes = int(values * spec.batch_size * (2 if mixed_precision else 4))
    weight_bytes = parameters * WEIGHT_BYTES
    slots = _OPTIMIZER_SLOTS.get(spec.optimizer.name, 0)
    training_bytes = weight_bytes + trainable * WEIGHT_BYTES * (1 + slots) + activation_bytes
    memory = memory_budget()
    if training_bytes > memory.bytes:
        raise RecipeError(
            f"The recipe's {model_spec.family} model cannot be trained on this machine: it has "
            f"{parameters:,} parameters ({format_bytes(weight_bytes)} of float32 weights), and "
            f"training it with {spec.optimizer.name.value} holds the weights, their gradients "
            f"and {slots} optimizer value(s) per weight, plus {format_bytes(activation_bytes)} "
            f"of activations at batch {spec.batch_size}: about {format_bytes(training_bytes)}. "
            f"This machine has {memory.where}. The largest layers: "
            + ", ".join(f"{name} {count:,}" for count, name in widest[:3] if count)
            + ". Narrow them (fewer units, filters or dense widths), lower train.batch_size if "
            "the activations dominate, or train on a machine with more memory."
        )
    return ModelSize(
        summary=summary,
        parameters=parameters,
        trainable_parameters=trainable,
        activation_bytes=activation_bytes,
        weight_bytes=weight_bytes,
        training_bytes=training_bytes,
        memory=memory,
    )


@contextlib.contextmanager
def _deferred_variables_forgotten() -> Iterator[None]:
    """Drop the measured model's never-initialised variables from Keras's global list of
    variables to initialise: the next stateless scope to close would otherwise try to
    initialise them (allocating the model after all, or failing on a name in use)."""
    from keras.src.backend.common import global_state

    key = "uninitialized_variables"
    before = list(global_state.get_global_attribute(key, []) or [])
    try:
        yield
    finally:
        global_state.set_global_attribute(key, before)


def _output_values(layer: keras.Layer) -> int:
    """Values per example in a layer's output; 0 for a layer the model calls only while
    training (a GAN's scaling, applied in its train_step), which has no symbolic output."""
    try:
        shape = layer.output.shape
    except (AttributeError, ValueError):
        return 0
    return math.prod(d or 1 for d in shape[1:])


def format_bytes(count: float) -> str:
    """A size in the largest binary unit that keeps it at least 1: ``format_bytes(3 * 2**30)``
    is ``'3.0 GiB'``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if count < 1024 or unit == "PiB":
            return f"{count:,.1f} {unit}" if unit != "B" else f"{int(count)} B"
        count /= 1024
    raise AssertionError("unreachable")


def memory_budget() -> MemoryBudget:
    """The memory one copy of the model may take: a GPU's (each replica holds the whole model)
    when training runs on GPUs, else the RAM this process may use (a cgroup's limit, if lower).
    """
    if GPUS:
        gpu = _gpu_memory()
        if gpu is not None:
            return MemoryBudget(gpu, f"{format_bytes(gpu)} of GPU memory per GPU")
    ram = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    limit = _cgroup_limit()
    if limit is not None and limit < ram:
        return MemoryBudget(limit, f"{format_bytes(limit)} of memory (its container's limit)")
    return MemoryBudget(ram, f"{format_bytes(ram)} of RAM")


def _gpu_memory() -> int | None:
    """The smallest GPU's memory in bytes, as the driver reports it; None if it cannot say."""
    try:
        listed = subprocess.run(
            ["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.split()
        return min(int(mib) for mib in listed) * 2**20 if listed else None
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


def _cgroup_limit() -> int | None:
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            return int(text)
    return None


def planned_rates(spec: TrainSpec, steps: int, timing: EpochTime | None) -> list[tuple[int, float]]:
    """The rate at the start of about ten epochs and at the last step, as the run would have it.

    A schedule paced by the time budget is read at the share of the budget each epoch starts
    at, from the timed epoch, so the plan shows it ending with the budget; untimed, the plan
    is the epochs' alone.
    """
    schedule = make_schedule(spec.lr_schedule, spec.optimizer.learning_rate, spec.epochs, steps)
    paced = find_time_paced(schedule)
    points = sorted({*range(0, spec.epochs, max(1, spec.epochs // 10)), spec.epochs})
    rates = []
    for epoch in points:
        if paced is not None and timing is not None and spec.time_budget:
            spent = epoch * timing.epoch_seconds / spec.time_budget
            paced.set_progress(min(1.0, spent))
        rates.append((epoch, _rate_at(schedule, min(epoch * steps, spec.epochs * steps - 1))))
    return rates


def _rate_at(schedule: object, step: int) -> float:
    if isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
        return float(keras.ops.convert_to_numpy(schedule(step)))
    return float(schedule)  # type: ignore[arg-type]
