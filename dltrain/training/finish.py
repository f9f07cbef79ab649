"""The end of a training run: its result, the learning curves, and run.json closed as completed;
and a resumed run whose training was already over (killed while saving) finished from its
checkpoints."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from dltrain.atomic import atomic_path
from dltrain.faults import crash_point
from dltrain.models.saving import load_model
from dltrain.recipe.schema import Calibration
from dltrain.run_info import CalibrationInfo, StopReason, TrialMarker
from dltrain.training.calibrate import calibrate
from dltrain.training.curves import plot_learning_curves
from dltrain.training.multiworker import weights_digest
from dltrain.training.plan import RunPlan
from dltrain.training.record import (
    Outcome,
    RunRecord,
    best_epoch,
    complete_record,
    open_run_record,
    read_history,
    read_outcome,
)


@dataclass(frozen=True)
class TrainResult:
    """What one training run did, and where its folder is."""

    run_dir: Path
    epochs_run: int
    monitor: str | None
    best_epoch: int | None  # 1-based epoch whose weights the saved model holds
    best_value: float | None
    final_logs: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    stopped_by: StopReason = StopReason.EPOCHS
    num_workers: int = 1  # machines training together (TF_CONFIG)
    chief: bool = True  # False: another worker wrote the run; run_dir was this one's scratch
    weights_sha256: str | None = None  # the saved weights; across workers the same on each
    warnings: tuple[str, ...] = ()  # as run.json records them (``training_warnings``)
    calibration: CalibrationInfo | None = None  # train.calibration: the fitted temperature


# Fewer epochs than this are a quick look the user asked for (a smoke test, a first try): the
# best epoch being the last of one or two says nothing a user does not know.
MIN_EPOCHS_TO_WARN = 3


def training_warnings(plan: RunPlan, outcome: Outcome) -> list[str]:
    """What the user should hear about how training went, each with its fix.

    Today one: the monitored metric was best at the last epoch of a run that ran all its epochs
    (early stopping never stopped it), so the model was still improving and probably wants more
    epochs. Not said of runs of fewer than ``MIN_EPOCHS_TO_WARN`` epochs, nor of runs stopped
    by their time budget (already said), nor without early stopping (no monitor to judge by).

    Args:
        plan: the run's plan (its epochs and early-stopping settings).
        outcome: what training did.
    """
    best = outcome.best
    if (
        best is None
        or best.epoch is None
        or outcome.stopped_by is not StopReason.EPOCHS
        or outcome.epochs_run < MIN_EPOCHS_TO_WARN
        or best.epoch < outcome.epochs_run
    ):
        return []
    value = f" ({best.value:.4g})" if best.value is not None else ""
    epochs = outcome.epochs_run
    patience = plan.spec.early_stopping.patience
    return [
        f"The best {best.monitor}{value} came at the last epoch ({epochs} of {epochs}): the "
        f"model was still improving when training ended and probably wants more epochs. Raise "
        f"train.epochs (--epochs {2 * epochs}); early stopping (patience {patience}, "
        f"train.early_stopping.patience) ends training once {best.monitor} stops improving."
    ]


def finish_resumed(plan: RunPlan, workdir: Path, tune: TrialMarker | None) -> TrainResult:
    """Finish a resumed run whose training was over: save its model and close run.json.

    The model is the one the run would have saved: with early stopping restoring the best
    weights, the best checkpoint; otherwise the last. A model already in place (the kill came
    while closing run.json) is kept.

    Args:
        plan: the run's plan (``finishing``).
        workdir: the folder holding runs/.
        tune: a trial's marker; None for a user's run.

    Returns:
        The run's result.
    """
    state = plan.state
    assert state is not None
    record = open_run_record(plan, workdir, tune)  # notes the resume, settles best.keras
    files = record.files
    if not files.finished:
        es = plan.spec.early_stopping
        best = files.best_checkpoint
        restores_best = es.enabled and es.restore_best_weights and best.is_file()
        source = best if restores_best else files.checkpoints / state.checkpoint
        with atomic_path(files.model) as tmp:
            if plan.spec.calibration is Calibration.NONE:
                shutil.copyfile(source, tmp)  # a checkpoint is a whole model, as model.keras is
            else:  # the checkpoints hold the model before its temperature
                model, record.info.calibration = calibrate(plan, load_model(source, compile=False))
                model.save(tmp)
            crash_point("train.model")
    for old in files.checkpoints.glob("epoch-*.keras"):  # one a kill kept from pruning
        if old.name != state.checkpoint:
            old.unlink(missing_ok=True)
    monitor = plan.spec.early_stopping.monitor
    outcome = read_outcome(
        read_history(files.history), best_epoch(monitor, state.early_stopping), state.stopped_by
    )
    saved = load_model(files.model, compile=False)
    parameters = int(saved.count_params())
    return close_run(plan, record, outcome, 0.0, weights_digest(saved), parameters)


def close_run(
    plan: RunPlan,
    record: RunRecord,
    outcome: Outcome,
    seconds: float,
    digest: str | None,
    parameters: int,
) -> TrainResult:
    """Draw the learning curves and close run.json as completed, once the model is saved.

    Args:
        plan: the run's plan.
        record: the run's record.
        outcome: what training did.
        seconds: how long this session's fitting took.
        digest: the saved weights' SHA-256 (the same on every worker in sync).
        parameters: the model's parameter count.

    Returns:
        The run's result.
    """
    files = record.files
    if not plan.trial:
        title = f"{plan.recipe.name} · {files.path.name}"
        plot_learning_curves(files.history, files.learning_curves, title)
    crash_point("train.record")
    warnings = training_warnings(plan, outcome)
    record.info.warnings = warnings
    complete_record(record, outcome, seconds, digest, parameters)
    cluster = plan.devices.cluster
    return TrainResult(
        run_dir=files.path,
        epochs_run=outcome.epochs_run,
        monitor=outcome.best.monitor if outcome.best else None,
        best_epoch=outcome.best.epoch if outcome.best else None,
        best_value=outcome.best.value if outcome.best else None,
        final_logs=outcome.final_logs,
        seconds=seconds,
        stopped_by=outcome.stopped_by,
        num_workers=cluster.num_workers if cluster else 1,
        chief=plan.devices.is_chief,
        weights_sha256=digest,
        warnings=tuple(warnings),
        calibration=record.info.calibration,
    )
