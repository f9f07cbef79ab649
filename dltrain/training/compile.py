"""Everything ``model.compile`` and ``model.fit`` need from the recipe's train section.

``compile_parts`` is the one seam between the optimisation settings and the training loop: the
optimizer (with its schedule), the loss, the metrics, the callbacks those settings need (reduce
on plateau, the time budget's pace, the momentum cycle) and the class weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dltrain.backend import keras
from dltrain.errors import RecipeError
from dltrain.manifest import ClassTarget, Manifest
from dltrain.recipe.schema import TrainSpec
from dltrain.tasks import Task
from dltrain.training.averaging import ema_arguments
from dltrain.training.losses import logged_names, make_loss, on_target_scale, training_metrics
from dltrain.training.one_cycle import CYCLED_ATTRIBUTE, MomentumCycle, find_one_cycle
from dltrain.training.optimizers import make_optimizer
from dltrain.training.schedules import (
    PaceByTime,
    ReduceOnPlateau,
    find_plateau,
    find_time_paced,
    make_schedule,
)


@dataclass(frozen=True)
class CompileParts:
    """What to pass to ``model.compile`` (optimizer, loss, metrics) and ``model.fit``."""

    optimizer: keras.optimizers.Optimizer
    loss: keras.losses.Loss
    metrics: list[Any]
    callbacks: list[keras.callbacks.Callback] = field(default_factory=list)
    class_weight: dict[int, float] | None = None


def compile_parts(
    spec: TrainSpec,
    task: Task,
    manifest: Manifest,
    steps_per_epoch: int,
    *,
    soft_labels: bool = False,
) -> CompileParts:
    """Build the optimizer, loss, metrics, callbacks and class weights of a training run.

    Example::

        parts = compile_parts(recipe.train, task, dataset.manifest, steps_per_epoch)
        model.compile(optimizer=parts.optimizer, loss=parts.loss, metrics=parts.metrics)
        model.fit(..., callbacks=[*mine, *parts.callbacks], class_weight=parts.class_weight)

    Args:
        spec: the recipe's ``train`` section.
        task: what the prepared dataset's model predicts.
        manifest: the prepared dataset's manifest (classes and their counts).
        steps_per_epoch: optimizer steps (batches) per epoch, to count schedules in epochs.
        soft_labels: the labels are class probabilities (MixUp, CutMix; the family's hooks say).

    Returns:
        The parts; ``callbacks`` must run after the logger that records ``learning_rate`` for
        the log to show each epoch's rate before a reduction takes effect.

    Raises:
        RecipeError: a loss, class weighting or plateau monitor that does not fit the data.
    """
    num_classes = manifest.num_classes if task.is_classification else None
    schedule = make_schedule(
        spec.lr_schedule, spec.optimizer.learning_rate, spec.epochs, steps_per_epoch
    )
    callbacks: list[keras.callbacks.Callback] = []
    plateau = find_plateau(schedule)
    if plateau is not None:
        plateau_spec = spec.lr_schedule.reduce_on_plateau
        known = logged_names(task)
        if plateau_spec.monitor not in known:
            raise RecipeError(
                f"`train.lr_schedule.reduce_on_plateau.monitor` is {plateau_spec.monitor!r}, "
                f"which training does not log. Expected one of {', '.join(known)}."
            )
        callbacks.append(ReduceOnPlateau(plateau_spec))
    pace = find_time_paced(schedule)
    if pace is not None:
        assert spec.time_budget is not None  # the recipe's validation asks for one
        callbacks.append(PaceByTime(spec.time_budget))
    cycle = find_one_cycle(schedule)
    momenta = spec.lr_schedule.momentum_range
    attribute = CYCLED_ATTRIBUTE.get(spec.optimizer.name)
    if cycle is not None and momenta is not None and attribute is not None:
        callbacks.append(
            MomentumCycle(cycle, attribute, high=momenta[0], low=momenta[1], pace=pace)
        )
    return CompileParts(
        optimizer=make_optimizer(spec.optimizer, schedule, ema_arguments(spec)),
        loss=on_target_scale(
            make_loss(spec.loss, task, num_classes, soft_labels=soft_labels), task, manifest
        ),
        metrics=training_metrics(task),
        callbacks=callbacks,
        class_weight=class_weights(spec.class_weight, task, manifest, soft_labels=soft_labels),
    )


def class_weights(
    setting: str | dict[str, float] | None,
    task: Task,
    manifest: Manifest,
    *,
    soft_labels: bool = False,
) -> dict[int, float] | None:
    """The ``class_weight`` dict for ``model.fit``: one weight per class index, or None.

    ``balanced`` takes the weights the prepared dataset records (``target.class_weights``:
    scikit-learn's ``n / (classes · count_c)`` from the training split's class counts, so the
    average weight per example stays 1). A mapping names classes by index or by name; classes it
    leaves out weigh 1.

    Args:
        setting: the recipe's ``train.class_weight``.
        task: what the prepared dataset's model predicts.
        manifest: the prepared dataset's manifest.
        soft_labels: the labels are class probabilities (MixUp, CutMix).

    Raises:
        RecipeError: weights asked for on a regression dataset, or a class that does not exist,
            or with blended labels.
    """
    if setting is None:
        return None
    if soft_labels:
        # Keras would weigh a blended example by its larger share's class alone.
        raise RecipeError(
            f"`train.class_weight` is {setting!r}, but `model.augmentation` mixes examples "
            f"(mixup or cutmix): a blended example belongs to two classes, so one weight per "
            f"example cannot be right. Weigh the classes inside the loss instead, where each "
            f"class's share of a label gets its own weight: `train.loss: {{name: focal, gamma: 0, "
            f"alpha: [w0, w1, ...]}}` (gamma 0 is plain cross-entropy; one weight per class, in "
            f"label order), and remove train.class_weight."
        )
    if not task.is_classification:
        raise RecipeError(
            f"`train.class_weight` is {setting!r}, but the prepared dataset's task is "
            f"{task.value}: there are no classes to weigh. Remove train.class_weight (to weigh "
            f"examples of a numeric target, resample the data instead)."
        )
    target = manifest.target_as(ClassTarget)
    num_classes = target.num_classes
    if setting == "balanced":
        return dict(enumerate(target.class_weights))
    if not isinstance(setting, dict):
        raise RecipeError(f"`train.class_weight` must be balanced or a mapping. Got {setting!r}.")
    names = target.classes
    weights = dict.fromkeys(range(num_classes), 1.0)
    for key, weight in setting.items():
        if key in names:
            index = names.index(key)
        elif key.isdigit() and int(key) < num_classes:
            index = int(key)
        else:
            raise RecipeError(
                f"`train.class_weight` names class {key!r}, which the prepared dataset does not "
                f"have. Expected class indices 0–{num_classes - 1} or names: {', '.join(names)}."
            )
        weights[index] = float(weight)
    return weights
