"""dltrain predict: raw inputs → a run's predictions as CSV or JSON lines, in batches."""

from __future__ import annotations

import csv
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from dltrain.atomic import atomic_path, remove_stale_partials
from dltrain.data.readers.inputs import open_input
from dltrain.data.readers.model_input import InputChunk, InputReport
from dltrain.errors import DataError, UsageError
from dltrain.evaluation.metrics import (
    anomaly_scores,
    anomaly_threshold,
    class_probabilities,
    positive_scores,
    predicted_classes,
)
from dltrain.evaluation.run_model import RunModel, open_run
from dltrain.evaluation.threshold import StoredThreshold, read_stored_threshold
from dltrain.evaluation.tta import AveragedViews, TtaViews

Progress = Callable[[int, int], None]  # (examples done, examples in all)
# One output row: pass-through columns and predictions, as CSV cells or one JSON object.
Row = dict[str, object]
OUTPUT_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


@dataclass(frozen=True)
class PredictRequest:
    run_dir: Path
    input: Path | None  # None: not given, refused (only a GAN's --num-samples needs none)
    output: Path
    input_format: str = "auto"
    batch_size: int = 256
    threshold: float | None = None  # binary: overrides the run's stored threshold
    tta: int = 1  # image classifiers: views averaged (evaluation/tta.py); 1: the image alone


@dataclass(frozen=True)
class PredictResult:
    output: Path
    output_format: str
    input_format: str
    num_examples: int
    task: str
    threshold: float | None
    seconds: float  # reading, predicting and writing; loading TensorFlow and the model excluded
    counts: dict[str, int] = field(default_factory=dict)  # classification: examples per class
    inputs: InputReport = field(default_factory=InputReport)  # missing and unseen, per column
    tta: TtaViews | None = None  # the views averaged, if any


def output_format(path: Path) -> str:
    """CSV or JSON lines, from the output file's suffix.

    Raises:
        UsageError: another suffix.
    """
    fmt = OUTPUT_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UsageError(
            f"--output {path} has the suffix {path.suffix or '(none)'!r}; predict writes CSV "
            f"(.csv) or JSON lines (.jsonl, one JSON object per input). Name the file "
            f"accordingly."
        )
    return fmt


def num_examples(features: np.ndarray | dict[str, np.ndarray]) -> int:
    """Examples in an array, or in a dict of one array per input column (tables)."""
    if isinstance(features, dict):
        return len(next(iter(features.values()))) if features else 0
    return len(features)


def predict_batches(
    model: Any, features: np.ndarray | dict[str, np.ndarray], batch_size: int
) -> np.ndarray:
    """The model's outputs for ``features``, computed ``batch_size`` examples at a time."""
    outputs = []
    for start in range(0, num_examples(features), batch_size):
        part = slice(start, start + batch_size)
        batch = (
            {k: v[part] for k, v in features.items()}
            if isinstance(features, dict)
            else features[part]
        )
        outputs.append(np.asarray(model.predict_on_batch(batch)))
    return np.concatenate(outputs) if outputs else np.empty((0,))


def validation_anomaly_threshold(
    model: Any, x: Any, batch_size: int, percentile: float
) -> StoredThreshold:
    """The anomaly threshold: ``percentile`` of the reconstruction errors of ``x`` (the
    validation split), as stored in a run's threshold.json."""
    errors = anomaly_scores(x, predict_batches(model, x, batch_size))
    return StoredThreshold(
        schema_version=1,
        kind="anomaly",
        threshold=anomaly_threshold(errors, percentile),
        percentile=percentile,
        chosen_on="validation",
        num_examples=len(errors),
        created=datetime.now(UTC).isoformat(timespec="seconds"),
    )


class Rows:
    """Turns a batch of model outputs into output rows for the run's task."""

    def __init__(self, run: RunModel, threshold: float | None, anomaly: float | None) -> None:
        self.run = run
        self.task = run.task
        self.classes = run.classes
        self.threshold = threshold
        self.anomaly = anomaly
        self.counts: Counter[str] = Counter()

    def make(self, chunk: InputChunk, outputs: np.ndarray) -> list[Row]:
        n = len(chunk)
        rows: list[Row] = [
            {name: values[i] for name, values in chunk.columns.items()} for i in range(n)
        ]
        if self.run.is_classifier:
            probabilities = class_probabilities(outputs)
            labels = predicted_classes(probabilities, self.threshold)
            scores = positive_scores(probabilities) if len(self.classes) == 2 else None
            for i, row in enumerate(rows):
                name = self.classes[labels[i]]
                self.counts[name] += 1
                row["prediction"] = name
                if scores is not None:
                    row["score"] = float(scores[i])
                row["probability"] = float(probabilities[i, labels[i]])
                row["probabilities"] = {
                    c: float(probabilities[i, j]) for j, c in enumerate(self.classes)
                }
        elif self.task == "reconstruction":
            errors = anomaly_scores(chunk.features, outputs)
            for i, row in enumerate(rows):
                row["reconstruction_error"] = float(errors[i])
                if self.anomaly is not None:
                    row["anomaly"] = bool(errors[i] > self.anomaly)
        else:
            flat = np.asarray(outputs, dtype=np.float64).reshape(n, -1)
            names = self.value_names(flat.shape[1])
            for i, row in enumerate(rows):
                if len(names) == 1:
                    row["prediction"] = float(flat[i, 0])
                else:
                    row.update({f"prediction_{k}": float(flat[i, j]) for j, k in enumerate(names)})
        return rows

    def value_names(self, width: int) -> list[str]:
        """The output columns of a model answering ``width`` values per example."""
        targets = self.run.target_names
        if width == 1:
            return ["value"]
        if self.task == "forecasting":
            horizon = width // max(len(targets), 1)
            if len(targets) <= 1:
                return [f"t+{s + 1}" for s in range(horizon)]
            return [f"{t}_t+{s + 1}" for s in range(horizon) for t in targets]
        return targets if len(targets) == width else [str(j) for j in range(width)]


class Writer:
    """Writes rows as CSV (probabilities flattened into probability_<class>) or JSON lines."""

    def __init__(self, handle: TextIO, fmt: str) -> None:
        self.handle = handle
        self.fmt = fmt
        self.csv: csv.DictWriter[str] | None = None

    def write(self, rows: list[Row]) -> None:
        if self.fmt == "jsonl":
            for row in rows:
                self.handle.write(json.dumps(plain_row(row)) + "\n")
            return
        flat = [_flatten(row) for row in rows]
        if self.csv is None and flat:
            self.csv = csv.DictWriter(self.handle, fieldnames=list(flat[0]), lineterminator="\n")
            self.csv.writeheader()
        if self.csv is not None:
            self.csv.writerows(flat)


def plain_row(row: Row) -> Row:
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()}


def _flatten(row: Row) -> Row:
    # CSV has no nesting: {"probabilities": {"cat": p}} becomes a column probability_cat
    flat: Row = {}
    for key, value in row.items():
        if key == "probabilities" and isinstance(value, dict):
            flat.update({f"probability_{k}": _cell(v) for k, v in value.items()})
        else:
            flat[key] = _cell(value)
    return flat


def _cell(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        return f"{float(value):.6g}"
    return value.item() if isinstance(value, np.generic) else value


@dataclass(frozen=True)
class Predictor:
    """A run's loaded model and the thresholds its answers are read with: the one path from raw
    input chunks to output rows, shared by ``predict`` and ``serve``."""

    run: RunModel
    model: Any  # keras.Model
    threshold: float | None  # binary: the decision threshold (None: 0.5)
    anomaly: float | None  # reconstruction: the error above which an example is an anomaly
    tta: TtaViews | None = None  # image classifiers: the views averaged (evaluation/tta.py)

    def outputs(self, chunk: InputChunk) -> np.ndarray:
        """The model's raw outputs for one chunk of inputs (averaged over the views, if any)."""
        model = self.model if self.tta is None else AveragedViews(self.model, self.tta)
        return np.asarray(model.predict_on_batch(self.run.manifest.model_inputs(chunk.features)))

    def rows(self) -> Rows:
        """A fresh row maker (it counts the classes it predicts)."""
        return Rows(self.run, self.threshold, self.anomaly)


def open_predictor(
    run: RunModel, threshold: float | None, batch_size: int, tta: int = 1
) -> Predictor:
    """Load the run's model with its thresholds: ``threshold`` if given, else the one evaluate
    stored; for an autoencoder not yet evaluated, the anomaly threshold evaluate would choose.
    With ``tta`` > 1 its answers average that many views of each image.

    Raises:
        RunError: the model cannot be loaded.
        UsageError: ``tta`` > 1 for a run that does not allow it (``RunModel.tta_views``).
    """
    views = run.tta_views(tta)  # refused before the model loads
    stored = read_stored_threshold(run.run_dir)
    anomaly = None
    if stored is not None:
        if stored.kind == "anomaly":
            anomaly = stored.threshold
        elif threshold is None and run.task == "binary":
            threshold = stored.threshold
    model = run.load_keras()
    if run.task == "reconstruction" and anomaly is None and run.data_folder is not None:
        # not evaluated yet: the same threshold evaluate would choose (and store)
        from dltrain.data.store import open_store

        x, _ = open_store(run.data_folder).load_split("validation")
        x = run.manifest.model_inputs(x)
        percentile = float(run.evaluate_settings().get("anomaly_percentile", 99.0))
        anomaly = validation_anomaly_threshold(model, x, batch_size, percentile).threshold
    return Predictor(run, model, threshold, anomaly, views)


def predict_file(request: PredictRequest, progress: Progress | None = None) -> PredictResult:
    """Predict every example of ``request.input`` with the run's model and write the output.

    Everything that can be checked (run, input format and readability, output suffix) is
    checked before the model loads; the output is written under a temporary name and renamed
    into place at the end, so a failure never leaves a half file or clobbers an old one.

    Raises:
        RunError: the run has no usable model or manifest.
        DataError: the input is missing, unreadable or shaped unlike the training data.
        UsageError: no input; a GAN run, which takes none; an output suffix that is neither
            .csv nor .jsonl; a threshold for a model that is not a binary classifier.
    """
    run = open_run(request.run_dir)
    source = _input_for(run, request.input)
    fmt = output_format(request.output)
    if request.threshold is not None and run.task != "binary":
        raise UsageError(
            f"--threshold applies to binary classifiers, but run {run.run_dir.name} is a "
            f"{run.task} model. Drop --threshold."
        )
    if request.output.resolve() == source.resolve():
        raise UsageError(f"--output {request.output} is the input file; choose another name.")
    reader = open_input(source, run.model_input, request.input_format)
    predictor = open_predictor(run, request.threshold, request.batch_size, request.tta)
    rows = predictor.rows()
    started = time.perf_counter()
    done = 0
    request.output.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(request.output.parent, [request.output.name])  # a killed predict's
    with atomic_path(request.output) as tmp, tmp.open("w", encoding="utf-8", newline="") as handle:
        writer = Writer(handle, fmt)
        for chunk in finite_chunks(reader.chunks(request.batch_size)):
            writer.write(rows.make(chunk, predictor.outputs(chunk)))
            done += len(chunk)
            if progress is not None:
                progress(done, reader.num_examples)
    return PredictResult(
        output=request.output,
        output_format=fmt,
        input_format=reader.format,
        num_examples=done,
        task=run.task,
        threshold=predictor.threshold,
        seconds=time.perf_counter() - started,
        counts=dict(rows.counts),
        inputs=reader.report,
        tta=predictor.tta,
    )


def _input_for(run: RunModel, given: Path | None) -> Path:
    """The input file to predict, refused for a run that takes no input.

    Raises:
        UsageError: a GAN run (generation: it makes images, it reads none), or no input.
    """
    if run.task == "generation":
        received = (
            f"--input {given}, which a GAN does not read"
            if given is not None
            else "no --num-samples to say how many images to make"
        )
        raise UsageError(
            f"Run {run.run_dir.name} is a GAN (task generation): it makes new images rather "
            f"than answering inputs. Received {received}. Generate images with `dltrain "
            f"predict --num-samples N --output DIR` and no --input: one PNG per image in DIR."
        )
    if given is None:
        raise UsageError(
            f"Predict needs --input: the raw inputs for run {run.run_dir.name}'s {run.task} "
            f"model, shaped like its training source. Received none; give --input FILE."
        )
    return given


def finite_chunks(chunks: Iterator[InputChunk]) -> Iterator[InputChunk]:
    for chunk in chunks:
        if len(chunk) == 0:
            continue
        features = chunk.features
        # tables may hold NaN (the model imputes it); arrays of pixels or windows may not
        if (
            isinstance(features, np.ndarray)
            and np.issubdtype(features.dtype, np.floating)
            and not np.all(np.isfinite(features))
        ):
            raise DataError(
                "The input holds NaN or infinite values, which the model cannot score. Fill or "
                "drop them before predicting."
            )
        yield chunk
