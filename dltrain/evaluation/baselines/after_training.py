"""The check ``train`` runs on its new model: is it better than the trivial baseline on the
validation split? Cheap by design: the class prior, the training mean or the naive forecasts,
never gradient boosting, and one pass of the model over the validation split."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dltrain.data.store import PreparedDataset
from dltrain.evaluation.baselines import TRIVIAL, plan_baselines
from dltrain.evaluation.baselines.verdicts import losing_warnings
from dltrain.evaluation.evaluate import score, score_baselines
from dltrain.evaluation.examples import Examples, prepared_dataset
from dltrain.evaluation.run_model import RunModel, open_run
from dltrain.recipe.schema import EvaluateSpec


def check_against_trivial(run_dir: Path, batch_size: int) -> list[str]:
    """Score a finished run on its validation split beside the trivial baselines; record and
    return a warning for each it does no better than.

    The warnings go into run.json's ``warnings`` (kept with any already there), so ``runs`` and
    later readers see them too.

    Args:
        run_dir: the run folder, with its saved model.
        batch_size: the prediction batch size.

    Returns:
        The warnings; none for tasks without a trivial baseline, or without a validation split.

    Raises:
        DataError, RunError: the run's model or prepared data cannot be read.
    """
    run = open_run(run_dir)
    plan = plan_baselines(run, gbm=False)
    split = run.manifest.splits.get("validation")
    if not plan.names or split is None or split.num_examples == 0:
        return []
    dataset = prepared_dataset(run)
    source = {"kind": "split", "folder": str(dataset.folder), "split": "validation"}
    streamed = run.info.input is not None and run.info.input.path == "stream"
    if streamed and (run.is_classifier or run.task == "regression"):
        # a run too large for memory: its split shard by shard (only forecasts and
        # reconstructions need the inputs beside the outputs to score)
        outputs, y = _predicted_by_shard(run, dataset, batch_size)
        examples = Examples(None, y, "validation", source)
    else:
        x, y = dataset.load_split("validation", resample=False)
        examples = Examples(x, np.asarray(y), "validation", source)
        outputs = run.predict(run.load_keras(), x, batch_size)
    spec = EvaluateSpec()
    metrics = score(run, examples, outputs, spec, None).report.metrics
    baselines, _ = score_baselines(run, examples, plan, spec, lambda _: None)
    warnings = losing_warnings(
        run.task, metrics, baselines, TRIVIAL.get(run.task, ()), "the validation split"
    )
    if warnings:
        info = run.files.read_info()
        info.warnings = [*info.warnings, *(w for w in warnings if w not in info.warnings)]
        run.files.write_info(info)
    return warnings


def _predicted_by_shard(
    run: RunModel, dataset: PreparedDataset, batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """The validation split's model outputs and targets, one shard in memory at a time."""
    model = run.load_keras()
    outputs, targets = [], []
    for shard in dataset.split_entry("validation").shards:
        x, y = dataset.read_shard(shard)
        outputs.append(np.asarray(run.predict(model, x, batch_size)))
        targets.append(np.asarray(y))
    return np.concatenate(outputs), np.concatenate(targets)
