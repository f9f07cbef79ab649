"""Training across several machines (``TF_CONFIG``) with a loop of our own instead of ``fit``.

Keras 3's ``model.fit`` fails under ``MultiWorkerMirroredStrategy`` (keras-team/keras#20585):
it reduces each replica's metric *results*, which the strategy cannot do across workers. The
model's own ``train_step`` and ``test_step`` are fine there: Keras scales the loss by the number
of replicas and its optimizer all-reduces the gradients. So this loop runs those steps under
``strategy.run`` and reads the metrics in cross-replica context, where their variables (sum
aggregated, synchronised on read) are all-reduced over every worker. Every worker therefore
sees the same logs and drives the same callbacks to the same decisions, which keeps the
workers' collective operations in step.

Batches keep their meaning: ``batch_size`` is the global batch, each of ``n`` workers computes
``1/n`` of it, so a recipe trains the same model on one machine or many, only faster.

One call into TensorFlow runs ``STEPS_PER_EXECUTION`` batches, as ``fit`` does with
``steps_per_execution``: between workers every metric read and stop vote is an all-reduce, a
rendezvous of all processes, so the loop makes those once per call (batch callbacks with it);
only the gradients' all-reduce stays per batch. Two workers on localhost trained an epoch in
4.8x ``fit``'s time at one batch per call and 2.3x at 64 (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dltrain.backend import keras, tf
from dltrain.errors import TrainingFailed, UsageError
from dltrain.models import training_hooks
from dltrain.recipe.schema import Recipe, SchedulePace
from dltrain.runs import PLOTS, TENSORBOARD
from dltrain.training.callbacks import Logs
from dltrain.training.device import cluster_from_env
from dltrain.training.reproduction import weights_sha256

# Batches per call into TensorFlow (see benchmarks/RESULTS.md, "Several machines"): reading the
# metrics and voting on stopping all-reduce across workers, once per execution instead of per batch.
STEPS_PER_EXECUTION = 64

# A worker that died or cannot be reached surfaces as one of these in the others.
_LOST_WORKER = (
    tf.errors.UnavailableError,
    tf.errors.CancelledError,
    tf.errors.DeadlineExceededError,
    tf.errors.AbortedError,
)


def check_supported(recipe: Recipe, *, trial: bool = False) -> None:
    """Refuse what cannot train across the ``TF_CONFIG`` workers, before anything starts.

    Args:
        recipe: the recipe to train.
        trial: whether this is a ``dltrain tune`` trial, which runs on its own machine.

    Raises:
        UsageError: ``TF_CONFIG`` is malformed, the run is a tuning trial (it would wait
            forever for workers that never start it), or the model's family trains on one
            machine only (a GAN: its two optimizers' steps do not scale their losses by the
            number of replicas, so the workers' summed gradients would multiply its rates).
    """
    cluster = cluster_from_env()
    if cluster is not None and trial:
        raise UsageError(
            f"TF_CONFIG asks for {cluster.num_workers} workers, but `dltrain tune` runs each "
            f"trial on one machine (tuners on several machines share a study through "
            f"--storage instead). Unset TF_CONFIG for dltrain tune."
        )
    if cluster is None:
        return
    if recipe.train.lr_schedule.pace == SchedulePace.TIME_BUDGET:
        # Each worker would pace by its own clock, so their rates, and then their weights,
        # would drift apart.
        raise UsageError(
            f"TF_CONFIG asks for {cluster.num_workers} workers, but `train.lr_schedule.pace` is "
            f"time_budget: each worker would pace the schedule by its own clock and train at "
            f"its own rate. Remove pace (the schedule then counts epochs), or unset TF_CONFIG."
        )
    reason = training_hooks(recipe.model).single_machine_reason
    if reason is not None:
        raise UsageError(
            f"TF_CONFIG asks for {cluster.num_workers} workers, but the {recipe.model.family} "
            f"family trains on one machine only: {reason}. Unset TF_CONFIG to train it here "
            f"(every local GPU is still used)."
        )


def scratch_root() -> Path:
    """A private folder for a worker that is not the chief, removed when the process exits.

    Every worker runs the same callbacks (checkpoints read variables collectively), but only
    the chief's files are the run: TensorFlow's multi-worker guide has the others write to a
    temporary place.
    """
    folder = Path(tempfile.mkdtemp(prefix="dltrain-worker-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def private_copy(run_dir: Path) -> Path:
    """A copy of the chief's run folder for another worker to resume from and write into.

    The run folder must be visible to every worker (a shared file system, or copied there
    under the same path); the copy keeps this worker's writes out of the chief's folder.
    """
    copy = scratch_root() / run_dir.name
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns(TENSORBOARD, PLOTS))
    return copy


def distribute(dataset: tf.data.Dataset, strategy: Any) -> Any:
    """Give every worker its share of ``dataset``'s batches.

    A dataset in memory: each worker builds the same pipeline (same seed, so the same order)
    and keeps its share of each global batch (auto-shard policy ``DATA``). A streamed one
    (training/inputs.py) is already this worker's own shard files, batched at its share of the
    global batch, and marked with the policy ``OFF``: it goes to the worker as it is. Streamed
    validation is each worker's own rows once, padded with empty batches to the same steps.
    """
    policy = dataset.options().experimental_distribute.auto_shard_policy
    if policy == tf.data.experimental.AutoShardPolicy.OFF:
        return strategy.distribute_datasets_from_function(lambda _context: dataset)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return strategy.experimental_distribute_dataset(dataset.with_options(options))


def with_class_weights(dataset: tf.data.Dataset, class_weight: dict[int, float]) -> Any:
    """Add each example's class weight as a third element, as ``fit(class_weight=…)`` does."""
    table = tf.constant([class_weight.get(c, 1.0) for c in range(max(class_weight) + 1)])

    def add(x: Any, y: tf.Tensor) -> tuple[Any, tf.Tensor, tf.Tensor]:
        labels = tf.cast(tf.reshape(y, [-1]), tf.int32)
        return x, y, tf.gather(table, labels)

    return dataset.map(add, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def weights_digest(model: keras.Model) -> str:
    """SHA-256 of the model's weights in order: equal on every worker after a synchronous run."""
    return weights_sha256(model.get_weights())


def fit(
    model: keras.Model,
    strategy: Any,
    x: tf.data.Dataset,
    *,
    validation_data: tf.data.Dataset | None = None,
    epochs: int = 1,
    initial_epoch: int = 0,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    class_weight: dict[int, float] | None = None,
    steps_per_execution: int | None = None,
    **_: Any,
) -> keras.callbacks.History:
    """``model.fit`` for ``MultiWorkerMirroredStrategy``: same arguments, callbacks and logs.

    Callbacks see what ``fit`` shows them: ``on_train_begin``, per epoch ``on_epoch_begin``,
    ``on_train_batch_begin/end`` with the running logs once per execution of
    ``steps_per_execution`` batches (as ``fit`` does with ``compile(steps_per_execution=…)``),
    the validation pass as ``on_test_*``, and ``on_epoch_end`` with the ``val_`` logs.
    ``model.stop_training`` set on any worker (a time budget, say) stops every worker after
    the same batch: the last of the execution whose ``on_train_batch_end`` wished it.

    Args:
        model: compiled under ``strategy.scope()``.
        strategy: a ``tf.distribute.MultiWorkerMirroredStrategy``.
        x: batches of (features, labels), the global batch size.
        validation_data: batches evaluated at the end of every epoch.
        epochs: the epoch to stop at (exclusive, counted from 0, as in ``fit``).
        initial_epoch: the epoch to start from (a resume).
        callbacks: Keras callbacks, run in order.
        class_weight: one weight per class index, applied to the loss as in ``fit``.
        steps_per_execution: batches run by one call into TensorFlow; the weights are the
            same for any value, only the callbacks' batch granularity changes. None:
            ``STEPS_PER_EXECUTION``.

    Returns:
        The run's History, as ``fit`` returns it.

    Raises:
        TrainingFailed: another worker was lost.
    """
    if class_weight:
        x = with_class_weights(x, class_weight)
    if steps_per_execution is None:
        steps_per_execution = STEPS_PER_EXECUTION
    if steps_per_execution < 1:
        raise ValueError(f"steps_per_execution must be at least 1, got {steps_per_execution}")
    loop = _DistributedLoop(model, strategy, x, validation_data, steps_per_execution)
    callback_list = keras.callbacks.CallbackList(
        list(callbacks), add_history=True, model=model, epochs=epochs, steps=loop.steps, verbose=0
    )
    model.stop_training = False
    callback_list.on_train_begin()
    training_logs: Logs = {}
    try:
        for epoch in range(initial_epoch, epochs):
            training_logs = loop.run_epoch(epoch, callback_list)
            # a wish made at an epoch's last batch or in on_epoch_end must be everyone's
            if _anyone(strategy, bool(model.stop_training)):
                model.stop_training = True
                break
    except _LOST_WORKER as error:
        raise TrainingFailed(
            f"Training lost contact with another worker of the TF_CONFIG cluster (TensorFlow "
            f"reported {type(error).__name__}; its log above names the worker). Every worker "
            f"must run for the whole job. The chief's run folder keeps its last "
            f"completed epoch: start all workers again with `dltrain train --resume` (the "
            f"others need the chief's run folder, on a shared file system or copied)."
        ) from None
    callback_list.on_train_end(training_logs)
    return next(c for c in callback_list.callbacks if isinstance(c, keras.callbacks.History))


class _DistributedLoop:
    """One model's epochs under the strategy: distributed batches and the steps that run them.

    Args:
        model: compiled under ``strategy.scope()``.
        strategy: a ``tf.distribute.MultiWorkerMirroredStrategy``.
        x: batches of (features, labels[, class weights]), the global batch size.
        validation_data: batches evaluated at the end of every epoch, or None.
        steps_per_execution: batches run by one call of the step functions.
    """

    def __init__(
        self,
        model: keras.Model,
        strategy: Any,
        x: tf.data.Dataset,
        validation_data: tf.data.Dataset | None,
        steps_per_execution: int,
    ) -> None:
        self.model = model
        self.steps_per_execution = steps_per_execution
        self.steps = int(x.cardinality())
        self.validation_steps = (
            int(validation_data.cardinality()) if validation_data is not None else 0
        )
        with strategy.scope():
            # variables (metrics, loss trackers, optimizer slots) must exist before the steps
            # are traced: creating them in strategy.run on one worker only deadlocks the rest
            model._symbolic_build(data_batch=x.element_spec)  # noqa: SLF001 (what fit does too)
            if model.optimizer is not None and not model.optimizer.built:
                model.optimizer.build(model.trainable_variables)
        self.train_batches = distribute(x, strategy)
        self.val_batches = (
            distribute(validation_data, strategy) if validation_data is not None else None
        )
        self.train_function = _step_function(model, strategy, model.train_step)
        self.test_function = _step_function(model, strategy, model.test_step)

    def run_epoch(self, epoch: int, callbacks: keras.callbacks.CallbackList) -> Logs:
        """Train one epoch, then validate; returns the epoch's logs, ``val_`` ones included.

        Args:
            epoch: the epoch, counted from 0.
            callbacks: the ``CallbackList`` to drive.
        """
        self.model.reset_metrics()
        callbacks.on_epoch_begin(epoch)
        epoch_logs = self._train(callbacks)
        if self.val_batches is not None:
            val_logs = self._validate(callbacks)
            epoch_logs.update({f"val_{name}": value for name, value in val_logs.items()})
        callbacks.on_epoch_end(epoch, epoch_logs)
        return epoch_logs

    def _train(self, callbacks: keras.callbacks.CallbackList) -> Logs:
        """The epoch's training batches; stops every worker after the batch where any wished.

        Batch callbacks fire once per execution of ``steps_per_execution`` batches, as in
        ``fit``: ``on_train_batch_end`` gets the last batch's index and the running logs. A wish
        to stop made there is voted on at the start of the next execution, which then runs no
        batch on any worker.
        """
        iterator = iter(self.train_batches)
        wish = False  # this worker's wish to stop, voted on at the start of the next execution
        logs: Logs = {}
        for first in range(0, self.steps, self.steps_per_execution):
            count = min(self.steps_per_execution, self.steps - first)
            callbacks.on_train_batch_begin(first)
            results, anyone_stops = self.train_function(
                iterator, tf.constant(wish), tf.constant(count)
            )
            if bool(anyone_stops):
                self.model.stop_training = True
                break
            logs = _to_floats(results)
            callbacks.on_train_batch_end(first + count - 1, logs)
            wish = bool(self.model.stop_training)
        return dict(logs)

    def _validate(self, callbacks: keras.callbacks.CallbackList) -> Logs:
        """The validation pass, as ``on_test_*`` callbacks see it; returns its logs.

        Each worker evaluates its own share of the rows (``distribute``). The logs are read in
        cross-replica context, where every metric variable (a loss's weighted total and
        count, a confusion matrix's cells) is summed over all workers before the result
        divides them: the whole split's metrics, exactly, and the same on every worker, so
        early stopping and checkpoints decide alike everywhere.
        """
        assert self.val_batches is not None
        self.model.reset_metrics()
        callbacks.on_test_begin()
        iterator = iter(self.val_batches)
        logs: Logs = {}
        for first in range(0, self.validation_steps, self.steps_per_execution):
            count = min(self.steps_per_execution, self.validation_steps - first)
            callbacks.on_test_batch_begin(first)
            results, _ = self.test_function(iterator, tf.constant(False), tf.constant(count))
            logs = _to_floats(results)
            callbacks.on_test_batch_end(first + count - 1, logs)
        callbacks.on_test_end(logs)
        return logs


def _step_function(model: keras.Model, strategy: Any, step: Any) -> Any:
    """One execution: a vote on stopping, then ``steps`` of the model's own step, then the logs.

    ``wish`` is this worker's wish to stop, summed with the others'; when any worker wished,
    no step runs anywhere. Each step runs the model's step on every replica (Keras scales the
    loss, the optimizer all-reduces the gradients). The logs are the model's metrics, read
    once per execution in cross-replica context (their variables are all-reduced): reading
    them costs an all-reduce per metric variable, so reading once per execution rather than
    once per batch is most of what several steps per execution save.
    """

    @tf.function
    def run(
        iterator: Any, wish: tf.Tensor, steps: tf.Tensor
    ) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        votes = strategy.run(lambda: tf.cast(wish, tf.float32))
        anyone = strategy.reduce(tf.distribute.ReduceOp.SUM, votes, axis=None) > 0
        for _ in tf.range(tf.where(anyone, 0, steps)):
            strategy.run(step, args=(next(iterator),))
        return dict(model.get_metrics_result()), anyone

    return run


def _anyone(strategy: Any, flag: bool) -> bool:
    """Whether ``flag`` is true on any worker (every worker must call this together)."""
    votes = strategy.run(lambda: tf.constant(float(flag)))
    return bool(strategy.reduce(tf.distribute.ReduceOp.SUM, votes, axis=None) > 0)


def _to_floats(logs: Mapping[str, tf.Tensor]) -> Logs:
    return {name: float(value) for name, value in logs.items()}
