"""What the server answers: a run's model loaded once, its metadata, and predictions of a batch.

Predictions go through predict's own :class:`Predictor` and row maker, so ``dltrain predict``
and ``dltrain serve`` give the same columns and the same numbers for the same rows.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dltrain.data.readers.model_input import InputChunk, ModelInput
from dltrain.errors import UsageError
from dltrain.evaluation.predict import Predictor, finite_chunks, open_predictor, plain_row
from dltrain.evaluation.run_model import RunModel, open_run
from dltrain.manifest import FeatureKind

MAX_LISTED_CATEGORIES = 100  # metadata lists a category column's values up to this many


@dataclass(frozen=True)
class ServeSettings:
    run_dir: Path
    batch_size: int = 256  # examples per model call; a larger request is cut into such batches
    max_body: int = 1_048_576  # bytes: a larger request body is refused with 413


@dataclass
class Service:
    """A loaded run, answering ``/metadata`` and ``/predict``."""

    settings: ServeSettings
    run: RunModel
    model_input: ModelInput
    predictor: Predictor
    # Keras models build their predict function on first use; one call at a time keeps that
    # (and the model's state) safe under the server's threads. Parsing runs outside the lock.
    lock: threading.Lock = field(default_factory=threading.Lock)

    def predict(self, body: Any) -> dict[str, Any]:
        """The predictions of a parsed JSON body, one row per example as ``predict`` writes.

        Raises:
            DataError: the body does not hold inputs the model takes.
        """
        from dltrain.serving.batch import read_batch

        chunk, report = read_batch(body, self.model_input)
        rows = self.predictor.rows()
        predictions: list[dict[str, object]] = []
        size = self.settings.batch_size
        for part in finite_chunks(
            iter([_slice(chunk, i, i + size) for i in range(0, len(chunk), size)])
        ):
            with self.lock:
                outputs = self.predictor.outputs(part)
            predictions.extend(plain_row(row) for row in rows.make(part, outputs))
        return {
            "run": self.run.run_dir.name,
            "task": self.run.task,
            "num_examples": len(predictions),
            "predictions": predictions,
            "inputs": [c.to_json() for c in report.noteworthy],
        }

    def metadata(self) -> dict[str, Any]:
        """The run, its task and classes, the inputs it takes and the outputs it gives."""
        run = self.run
        return {
            "run": run.run_dir.name,
            "run_dir": str(run.run_dir),
            "recipe": run.recipe_name,
            "task": run.task,
            "model_family": run.model_family,
            "classes": run.classes,
            "threshold": self.predictor.threshold if run.task == "binary" else None,
            "anomaly_threshold": self.predictor.anomaly,
            "input": self._input(),
            "output": {"fields": self._output_fields()},
            "limits": {
                "max_body_bytes": self.settings.max_body,
                "batch_size": self.settings.batch_size,
            },
        }

    def _input(self) -> dict[str, Any]:
        model = self.model_input
        if model.kind == FeatureKind.TABLE:
            columns = []
            for name, dtype in model.columns:
                column: dict[str, Any] = {
                    "name": name,
                    "type": "number" if dtype == "float32" else "string",
                    "role": "identifier" if name in model.passthrough else "feature",
                }
                markers = set(model.csv.missing_values)
                known = sorted(set(model.vocabularies.get(name, ())) - markers)
                if known and len(known) <= MAX_LISTED_CATEGORIES:
                    column["categories"] = known
                columns.append(column)
            return {"kind": "table", "format": "records or columns", "columns": columns}
        if model.kind == FeatureKind.TEXT:
            return {
                "kind": "text",
                "format": "records or columns",
                "columns": [{"name": model.text_column, "type": "string", "role": "feature"}],
            }
        image = model.kind == FeatureKind.IMAGE
        return {
            "kind": str(model.kind),
            "format": "instances or images (base64 files)" if image else "instances",
            "shape": list(model.shape),
            "dtype": model.dtype,
        }

    def _output_fields(self) -> list[str]:
        run = self.run
        if run.is_classifier:
            score = ["score"] if len(run.classes) == 2 else []
            return ["row", "prediction", *score, "probability", "probabilities"]
        if run.task == "reconstruction":
            return ["row", "reconstruction_error", "anomaly"]
        shape = getattr(self.predictor.model, "output_shape", None)
        width = int(np.prod(shape[1:])) if isinstance(shape, tuple) and None not in shape[1:] else 1
        names = self.predictor.rows().value_names(width)
        return ["row", *(["prediction"] if len(names) == 1 else [f"prediction_{k}" for k in names])]


def _slice(chunk: InputChunk, start: int, stop: int) -> InputChunk:
    features = chunk.features
    part = (
        {k: v[start:stop] for k, v in features.items()}
        if isinstance(features, dict)
        else features[start:stop]
    )
    return InputChunk(part, {k: v[start:stop] for k, v in chunk.columns.items()})


def open_service(settings: ServeSettings) -> Service:
    """Open the run and load its model (TensorFlow loads here).

    Raises:
        RunError: the run has no usable model or manifest.
        UsageError: a GAN run, which answers no inputs.
    """
    run = open_run(settings.run_dir)
    if run.task == "generation":
        raise UsageError(
            f"Run {run.run_dir.name} is a GAN (task generation): it makes images rather than "
            f"answering inputs, so there is nothing to serve. Generate images with `dltrain "
            f"predict --num-samples N --output DIR`, or serve a run that takes inputs (--run)."
        )
    # read once: the property reads the saved recipe, which a request should not pay for
    model_input = run.model_input
    return Service(settings, run, model_input, open_predictor(run, None, settings.batch_size))
