"""Evaluate a run's model on a split of its prepared dataset."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dltrain.backend import keras
from dltrain.data.pipeline import make_dataset
from dltrain.data.store import open_store
from dltrain.errors import RunError
from dltrain.evaluation.metrics import classification_metrics
from dltrain.runs import METRICS_FILE, MODEL_FILE, RUN_INFO_FILE, read_json, write_json_atomic

SCHEMA_VERSION = 1


def evaluate_run(run_dir: Path, split: str, batch_size: int) -> dict[str, Any]:
    """Compute the metrics of ``run_dir``'s model on ``split`` and save them as metrics.json.

    The dataset is the one the run was trained on (recorded in run.json), and it must still be
    byte-identical to what training saw.

    Returns:
        The metrics document (``schema_version`` 1): run, split, metrics, per_class,
        confusion_matrix.

    Raises:
        RunError: the run's model cannot be loaded.
        DataError: the dataset is gone or changed.
    """
    info = read_json(run_dir / RUN_INFO_FILE)
    dataset = open_store(Path(info["data"]["folder"]))
    if dataset.manifest["source"]["fingerprint"] != info["data"]["fingerprint"]:
        raise RunError(
            f"The prepared dataset {dataset.folder} was rebuilt from a different source since run "
            f"{run_dir.name} was trained, so its test split is not the one the run held out. "
            f"Evaluate a run trained on the current data (train again), or restore the data."
        )
    x, y = dataset.load_split(split)
    try:
        model = keras.models.load_model(run_dir / MODEL_FILE)
    except (OSError, ValueError) as exc:
        raise RunError(
            f"Cannot load {run_dir / MODEL_FILE} ({exc}). The file is damaged or was written by "
            f"another Keras version; train the run again."
        ) from None
    batches = make_dataset(x, y, batch_size, shuffle=False, seed=0).map(
        lambda features, _: features
    )
    probabilities = model.predict(batches, verbose=0)
    document = {
        "schema_version": SCHEMA_VERSION,
        "run": str(run_dir),
        "recipe": info.get("recipe"),
        "split": split,
        "num_examples": len(y),
        "evaluated": datetime.now(UTC).isoformat(timespec="seconds"),
        **classification_metrics(y, probabilities, dataset.classes),
    }
    write_json_atomic(run_dir / metrics_file(split), document)
    return document


def metrics_file(split: str) -> str:
    """metrics.json for the test split (the one CI reads), metrics-<split>.json for the others."""
    return METRICS_FILE if split == "test" else f"metrics-{split}.json"
