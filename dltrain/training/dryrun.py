"""`dltrain train --dry-run`: what a run would do, without training."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from dltrain.backend import keras
from dltrain.models import build_model, training_hooks
from dltrain.models.io import ModelIO
from dltrain.recipe import LoadedRecipe
from dltrain.training.device import plan_devices
from dltrain.training.optimizers import make_schedule
from dltrain.training.plan import check_monitor, epoch_steps, open_prepared


@dataclass(frozen=True)
class DryRun:
    summary: list[str]
    parameters: int
    trainable_parameters: int
    activation_bytes: int  # per batch, forward activations kept for the backward pass
    steps_per_epoch: int
    learning_rates: list[tuple[int, float]]  # (epoch, rate at its start), and the last step
    device: str


def dry_run(loaded: LoadedRecipe, workdir: Path) -> DryRun:
    """Build the model and schedule the recipe describes and measure them; train nothing.

    Raises:
        DataError: no usable prepared dataset (the model's shape comes from it).
        RecipeError: a setting that does not fit the data.
    """
    recipe = loaded.recipe
    spec = recipe.train
    dataset = open_prepared(loaded, workdir)
    if spec.early_stopping.enabled:
        # the family's task, as train checks it: an autoencoder logs no accuracy
        check_monitor(spec.early_stopping.monitor, training_hooks(recipe.model).task(dataset))
    model = build_model(recipe.model, ModelIO(dataset.manifest))
    summary: list[str] = []
    model.summary(print_fn=lambda line, **_: summary.append(line))
    steps = epoch_steps(dataset, spec.batch_size)
    schedule = make_schedule(spec.lr_schedule, spec.optimizer.learning_rate, spec.epochs, steps)
    points = sorted({*range(0, spec.epochs, max(1, spec.epochs // 10)), spec.epochs})
    rates = [
        (epoch, _rate_at(schedule, min(epoch * steps, spec.epochs * steps - 1))) for epoch in points
    ]
    plan = plan_devices(spec)
    bytes_per_value = 2 if plan.mixed_precision else 4
    values = sum(math.prod(d or 1 for d in layer.output.shape[1:]) for layer in model.layers[1:])
    return DryRun(
        summary=summary,
        parameters=int(model.count_params()),
        trainable_parameters=int(sum(math.prod(w.shape) for w in model.trainable_weights)),
        activation_bytes=int(values * spec.batch_size * bytes_per_value),
        steps_per_epoch=steps,
        learning_rates=rates,
        device=plan.description,
    )


def _rate_at(schedule: object, step: int) -> float:
    if isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
        return float(keras.ops.convert_to_numpy(schedule(step)))
    return float(schedule)  # type: ignore[arg-type]
