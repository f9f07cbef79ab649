"""Averaged weights: an exponential moving average (EMA) or stochastic weight averaging (SWA).

Both live in the same place: the optimizer's ``use_ema`` slots, one average per trainable
variable, which Keras saves with the optimizer in every ``.keras`` checkpoint. EMA lets Keras
update them after every step (``ema_momentum``); SWA sets ``ema_momentum`` to 1, so Keras's
update leaves them be, and ``AveragedWeights`` folds the weights in at the end of each epoch from
``train.swa.start_epoch`` on (before it, the "average" is the weights themselves).

The averaged model is the one judged and kept, everywhere:

- from each epoch's validation to the end of its ``on_epoch_end`` callbacks, the model's
  variables and the average slots are *swapped*: validation scores the averaged weights, early
  stopping keeps them as its best weights, and the epoch's checkpoint (hence best.keras) holds
  them as the model's weights, with the trained weights in the optimizer's slots;
- after the epoch the two are swapped back and training goes on from the trained weights;
- Keras's ``finalize_variable_values`` (and ``AveragedWeights.on_train_end``, for the loop
  across machines that lacks it) leave the averaged weights in the model when ``fit`` ends;
- a resumed run loads a checkpoint and swaps back (``restore_trained_weights``), so it goes on
  from the trained weights with the average it had.

SWA's average needs batch-normalisation statistics of its own: ``recompute_batch_norm`` runs one
pass over the training batches before the model is saved.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from dltrain.backend import keras
from dltrain.errors import RecipeError
from dltrain.recipe.schema import TrainSpec
from dltrain.training.callbacks import Logs

if TYPE_CHECKING:  # hooks.py imports compile.py, which imports this module
    from dltrain.training.hooks import TrainingHooks

# Keras's EMA update with momentum 1 keeps the average as it is: SWA updates it itself.
SWA_EMA_MOMENTUM = 1.0


def ema_arguments(spec: TrainSpec) -> dict[str, Any]:
    """The optimizer keyword arguments that give it average slots; empty when averaging is off.

    ``ema_overwrite_frequency`` stays None: overwriting the trained weights with their average
    every N steps is another algorithm (the trained weights would restart from the average).
    """
    if spec.optimizer.ema.enabled:
        return {"use_ema": True, "ema_momentum": spec.optimizer.ema.momentum}
    if spec.swa.enabled:
        return {"use_ema": True, "ema_momentum": SWA_EMA_MOMENTUM}
    return {}


def averaging(spec: TrainSpec) -> bool:
    """Whether the run keeps averaged weights (EMA or SWA)."""
    return spec.optimizer.ema.enabled or spec.swa.enabled


def _inner(optimizer: keras.optimizers.Optimizer) -> keras.optimizers.Optimizer:
    # A mixed-precision LossScaleOptimizer holds the real one, with the slots.
    return getattr(optimizer, "inner_optimizer", optimizer)


def average_slots(model: keras.Model) -> list[tuple[Any, Any]]:
    """Pairs (trained variable, its average) of a compiled model whose optimizer averages.

    Raises:
        ValueError: the optimizer keeps no averages, or is not built yet.
    """
    optimizer = _inner(model.optimizer)
    averages = getattr(optimizer, "_model_variables_moving_average", None)
    if not getattr(optimizer, "use_ema", False) or averages is None:
        raise ValueError(
            "The model's optimizer keeps no weight averages: it was made without use_ema, or "
            "has not been built (make_optimizer and build_optimizers do both)."
        )
    variables = optimizer._trainable_variables
    return [(v, a) for v, a in zip(variables, averages, strict=True) if a is not None]


def swap_averages(model: keras.Model) -> None:
    """Exchange the model's trained variables with the optimizer's averages of them."""
    for variable, average in average_slots(model):
        trained = keras.ops.copy(variable.value)
        variable.assign(average.value)
        average.assign(trained)


def restore_trained_weights(model: keras.Model) -> None:
    """After loading a checkpoint (averaged weights in the model, trained ones in the slots),
    put the trained weights back in the model and the averages back in the slots."""
    swap_averages(model)


def refuse_averaging(hooks: TrainingHooks, spec: TrainSpec, family: str) -> None:
    """Refuse averaged weights where the model's family cannot keep them.

    Raises:
        RecipeError: the family says why not (``TrainingHooks.averaging_reason``).
    """
    reason = hooks.averaging_reason(spec) if averaging(spec) else None
    if reason is not None:
        raise RecipeError(
            f"The {family} model cannot keep averaged weights: {reason}. Remove train.swa / "
            f"train.optimizer.ema from the recipe."
        )


def resume_averages(
    model: keras.Model, hooks: TrainingHooks, spec: TrainSpec, initial_epoch: int
) -> None:
    """Ready a model restored from a checkpoint to go on training with its averages.

    The checkpoint holds the averages as the model's weights: mid-phase, the trained weights
    go back into the model (``restore_trained_weights``). A phase that starts here starts from
    the averages, as an uninterrupted run's ``fit`` ended the last phase with them.
    """
    phase_ends = {phase.end for phase in hooks.phases(spec, 0)}
    if averaging(spec) and initial_epoch not in phase_ends:
        restore_trained_weights(model)


class AveragedWeights(keras.callbacks.Callback):
    """Swaps the averaged weights in for each epoch's validation and ``on_epoch_end``.

    It must come first among the callbacks, and ``swap_back`` (its companion) last, so that
    everything an epoch's end records (early stopping's best weights, the checkpoint) sees the
    averaged weights, and training goes on from the trained ones.

    Args:
        swa_first_epoch: SWA: the first epoch (counted from 1) folded into the average; None
            for EMA, whose average Keras updates after every step.
    """

    def __init__(self, swa_first_epoch: int | None = None) -> None:
        super().__init__()
        self.swa_first_epoch = swa_first_epoch
        self.swapped = False
        self.averaged_epochs = 0  # SWA: how many epochs the average holds
        self._epoch: int | None = None
        self.swap_back = _SwapBack(self)

    @classmethod
    def for_run(cls, spec: TrainSpec) -> AveragedWeights:
        """The callback for a run's ``train`` section (EMA or SWA)."""
        return cls(spec.swa.first_epoch(spec.epochs) if spec.swa.enabled else None)

    def on_train_begin(self, logs: Logs | None = None) -> None:
        if not getattr(_inner(self.model.optimizer), "use_ema", False):
            raise ValueError(
                "AveragedWeights needs an optimizer made with use_ema (make_optimizer gives it "
                "one when train.optimizer.ema or train.swa is enabled)."
            )

    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None:
        self._epoch = epoch

    def on_test_begin(self, logs: Logs | None = None) -> None:
        if self._epoch is not None:  # validation inside fit, not a later evaluate
            self._swap_in(self._epoch)

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        self._swap_in(epoch)  # no-op when validation has swapped already

    def on_train_end(self, logs: Logs | None = None) -> None:
        self._epoch = None
        # Keras's fit does this (finalize_variable_values); the loop across machines does not.
        for variable, average in average_slots(self.model):
            variable.assign(average.value)

    def _swap_in(self, epoch: int) -> None:
        if self.swapped:
            return
        if self.swa_first_epoch is not None:
            self._fold(epoch + 1)
        swap_averages(self.model)
        self.swapped = True

    def _fold(self, epoch: int) -> None:
        """SWA: average in the weights after ``epoch`` (from 1), or track them before the start."""
        count = epoch - self.swa_first_epoch + 1 if self.swa_first_epoch is not None else 0
        self.averaged_epochs = max(0, count)
        for variable, average in average_slots(self.model):
            if count <= 0:
                average.assign(variable.value)  # before the start the average is the weights
            else:
                # running mean: avg + (w − avg)/n, exact for n = 1 (the average is w)
                average.assign(average.value + (variable.value - average.value) / count)


class _SwapBack(keras.callbacks.Callback):
    """The end of ``AveragedWeights``'s swap: training goes on from the trained weights."""

    def __init__(self, owner: AveragedWeights) -> None:
        super().__init__()
        self.owner = owner

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        if self.owner.swapped:
            swap_averages(self.model)
            self.owner.swapped = False


def batch_norm_layers(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    """The model's batch-normalisation layers, nested models included."""
    return [
        layer
        for layer in model._flatten_layers(include_self=False)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]


def recompute_batch_norm(model: keras.Model, batches: Iterable[Any]) -> int:
    """Recompute every batch-norm layer's moving statistics for the model's current weights.

    One pass in training mode over ``batches``, each layer's momentum set so that its moving
    mean and variance become the plain average over the batches (PyTorch's
    ``swa_utils.update_bn``). A layer a model calls in inference mode (a frozen backbone) keeps
    its statistics.

    Args:
        model: the model holding SWA's averaged weights.
        batches: the training batches, ``(inputs, labels, ...)`` tuples.

    Returns:
        How many batches were run; 0 when the model has no batch normalisation (nothing run).
    """
    layers = batch_norm_layers(model)
    if not layers:
        return 0
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.moving_mean.assign(keras.ops.zeros_like(layer.moving_mean))
        layer.moving_variance.assign(keras.ops.ones_like(layer.moving_variance))
    seen = 0
    try:
        for batch in batches:
            for layer in layers:
                layer.momentum = seen / (seen + 1)  # the first batch replaces, later ones average
            model(batch[0], training=True)
            seen += 1
    finally:
        for layer, momentum in zip(layers, momenta, strict=True):
            layer.momentum = momentum
    return seen
