"""How a model family trains: the hooks the training loop calls where families differ.

The loop in training/fit.py is the same for every family; what differs (what the model learns,
the labels it is fed, how it compiles, extra callbacks, training in phases, whether it may train
across machines) is asked of the family's ``TrainingHooks``. A family declares its subclass
beside its builder (models/gan.py, models/autoencoder.py, models/transfer.py, models/cnn.py)
and names it in the registry (models/__init__.py ``TRAINING``); ``TrainingHooks`` itself is the
way of the predictors, the families that end in the task's head and learn the prepared data's
target.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from dltrain.backend import keras, tf
from dltrain.data.store import PreparedDataset
from dltrain.manifest import Manifest
from dltrain.models import family_task
from dltrain.recipe.schema import TrainSpec
from dltrain.runs import RunFolder
from dltrain.tasks import Task
from dltrain.training.compile import CompileParts


@dataclass(frozen=True)
class Phase:
    """Epochs trained under one compilation of the model.

    Attributes:
        end: the epoch the phase stops at (exclusive, counted from 0, as ``fit``'s ``epochs``).
        train: the settings the phase compiles with; a phase after the first compiles anew.
        prepare: changes the model before a later phase compiles it (unfreezing a backbone).
    """

    end: int
    train: TrainSpec
    prepare: Callable[[keras.Model], object] | None = None


class TrainingHooks:
    """A predictor's training: the prepared data's task, its labels, the recipe's loss.

    Families that train otherwise subclass this and override what differs.

    Args:
        spec: the recipe's ``model`` section for this family.
    """

    # Why the family cannot train across the machines of a TF_CONFIG cluster; None: it can.
    single_machine_reason: str | None = None
    # Why the LR range test (training/lr_finder.py) cannot probe the family; None: it can.
    range_test_reason: str | None = None

    def __init__(self, spec: Any) -> None:
        self.spec = spec

    def task(self, dataset: PreparedDataset) -> Task:
        """What the model learns, which decides the loss, the metrics and what is logged.

        Args:
            dataset: the prepared dataset it trains on.

        Returns:
            The task the family declares in models/__init__.py ``TASKS`` (an autoencoder's
            reconstruction, a GAN's generation); a predictor's is the prepared data's.
        """
        return family_task(getattr(self.spec, "family", None)) or dataset.manifest.task

    def labels(self, y: np.ndarray) -> np.ndarray:
        """The labels ``fit`` is given for a split's targets ``y``.

        Args:
            y: the split's targets as the prepared dataset holds them.

        Returns:
            The labels to train on; a predictor learns the targets themselves.
        """
        return y

    @property
    def soft_labels(self) -> bool:
        """Whether training labels are class probabilities (blended examples) rather than
        class indices, so the loss must take them; a predictor's are the targets."""
        return False

    def batches(
        self, batches: tf.data.Dataset, manifest: Manifest, *, training: bool, seed: int
    ) -> tf.data.Dataset:
        """The batches ``fit`` is given, made from batches of (inputs, labels).

        Args:
            batches: a split's batches, labelled by ``labels``.
            manifest: the prepared dataset's manifest (its classes).
            training: the training split's (validation batches are never blended).
            seed: the run's seed for anything random.

        Returns:
            The batches to fit on or validate with; a predictor's as they are.
        """
        return batches

    def compile(self, model: keras.Model, parts: CompileParts, train: TrainSpec) -> None:
        """Compile ``model`` with the run's optimizer, loss and metrics.

        Args:
            model: the model, built or unfrozen, under the strategy's scope.
            parts: the optimizer, loss and metrics made from ``train``.
            train: the settings of the phase being compiled.
        """
        model.compile(optimizer=parts.optimizer, loss=parts.loss, metrics=parts.metrics)

    def build_optimizers(self, model: keras.Model) -> None:
        """Create the compiled model's optimizer variables, as its first training step would.

        A resumed run builds them before loading a checkpoint's optimizer state into them, so
        they must be built over the same variables in the same order as training builds them.

        Args:
            model: the compiled model.
        """
        model.optimizer.build(model.trainable_variables)

    def callbacks(
        self, files: RunFolder, dataset: PreparedDataset
    ) -> list[keras.callbacks.Callback]:
        """Callbacks of the family's own, run after the checkpoint is written each epoch.

        Args:
            files: the run folder they may write into.
            dataset: the prepared dataset the run trains on.

        Returns:
            The callbacks; a predictor has none.
        """
        return []

    def averaging_reason(self, train: TrainSpec) -> str | None:
        """Why the family cannot keep averaged weights (``train.optimizer.ema``,
        ``train.swa``) under ``train``; None: it can.

        Args:
            train: the recipe's ``train`` section.
        """
        return None

    def phases(self, train: TrainSpec, initial_epoch: int) -> list[Phase]:
        """The phases that take training from ``initial_epoch`` to ``train.epochs``.

        Args:
            train: the recipe's ``train`` section.
            initial_epoch: the epoch training starts from (a resumed run's is past 0).

        Returns:
            The phases in order; the last one ends at ``train.epochs``. A predictor has one.
        """
        return [Phase(train.epochs, train)]
