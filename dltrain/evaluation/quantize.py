"""Quantised TFLite exports, checked on the run's validation split against the float model.

Two kinds (``dltrain export --format tflite --quantize``):

- ``dynamic``: dynamic-range quantisation. Weights are stored as int8 and dequantised on the
  fly; activations stay float. Needs no calibration, so it works for every model the float
  TFLite export works for (tables with text categories included).
- ``int8``: full-integer quantisation. Weights and activations are int8, their ranges
  calibrated by running the model on up to 200 training examples through its raw-input path
  (the same pixels or columns prepare stored, the model's own scaling inside). Ops without an
  int8 kernel fall back to float kernels (``fully_integer`` says whether any did).

The model's inputs and outputs keep their types: raw pixels stay uint8 (already integers, so
quantising them would change nothing but the contract), table columns stay float32, and the
outputs stay float32 class probabilities or values in the target's units. So a quantised
export is a drop-in replacement for the float one: the same inputs, the same outputs and the
same metadata.json for the server, without a scale and zero point to undo by hand.

The deciding metric (accuracy for classes, RMSE for numbers, MAE beside it) of the quantised
model is measured on up to 1,000 validation examples against the float Keras model's on the
same examples; a drop beyond the tolerance refuses the export (exit 1), and nothing is written.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from dltrain.backend import keras, tf
from dltrain.errors import DataError, ExportError, ExportMismatch, RunError
from dltrain.evaluation.formats import (
    ConverterSetup,
    Inputs,
    _count,
    _tflite_value,
    float_setups,
    op_sets,
    run_tflite,
    tflite_flatbuffer,
)
from dltrain.evaluation.metrics.classification import class_probabilities, predicted_classes
from dltrain.evaluation.run_model import RunModel
from dltrain.evaluation.threshold import read_stored_threshold

CALIBRATION_EXAMPLES = 200  # TFLite's guide: a few hundred examples calibrate the ranges
METRIC_EXAMPLES = 1000  # enough to see a 1-point accuracy drop; seconds in the interpreter
CHUNK = 256  # examples per interpreter call
# The default tolerance per deciding metric: accuracy in points lost, RMSE as a relative rise.
DEFAULT_MAX_DROP = {"accuracy": 0.01, "rmse": 0.02}


class QuantizeMode(StrEnum):
    DYNAMIC = "dynamic"
    INT8 = "int8"


@dataclass(frozen=True)
class MetricChange:
    """The deciding metric of the float Keras model and of the quantised TFLite model."""

    metric: str  # accuracy (classes) or rmse (numbers)
    float_value: float
    quantized_value: float
    drop: float  # accuracy: points lost (0.01 = one point); rmse: relative rise (0.02 = 2%)
    max_drop: float
    examples: int  # validation examples both were scored on
    float_mae: float | None = None  # numbers: the MAE of each, reported beside the RMSE
    quantized_mae: float | None = None

    def to_json(self) -> dict[str, str | int | float | None]:
        return {
            "metric": self.metric,
            "float": self.float_value,
            "quantized": self.quantized_value,
            "drop": self.drop,
            "max_drop": self.max_drop,
            "examples": self.examples,
            "float_mae": self.float_mae,
            "quantized_mae": self.quantized_mae,
        }


@dataclass(frozen=True)
class QuantizationReport:
    """What quantising bought (size) and cost (metric), as metadata.json records it."""

    mode: QuantizeMode
    float_bytes: int  # the float TFLite model of the same Keras model
    bytes: int
    fully_integer: bool  # int8: every op has an int8 kernel; dynamic: always False
    calibration_examples: int  # int8: training examples calibrated on; dynamic: 0
    change: MetricChange

    @property
    def size_ratio(self) -> float:
        return self.bytes / self.float_bytes

    def to_json(self) -> dict[str, object]:
        return {
            "mode": self.mode.value,
            "float_bytes": self.float_bytes,
            "bytes": self.bytes,
            "size_ratio": round(self.size_ratio, 4),
            "fully_integer": self.fully_integer,
            "calibration_examples": self.calibration_examples,
            "metric": self.change.to_json(),
        }


def deciding_metric(task: str) -> str:
    """The metric a quantised export is judged by: accuracy for classes, RMSE for numbers.

    Raises:
        ExportError: the task has neither (an autoencoder, a GAN).
    """
    if task in ("binary", "multiclass"):
        return "accuracy"
    if task in ("regression", "forecasting"):
        return "rmse"
    raise ExportError(
        f"A quantised export is checked by the accuracy or RMSE it keeps on the validation "
        f"split, and a {task} model has neither. Export it unquantised (drop --quantize), which "
        f"is checked output by output against the Keras model."
    )


def quantize_tflite(
    run: RunModel, model: keras.Model, mode: QuantizeMode, path: Path, max_drop: float | None
) -> QuantizationReport:
    """Write ``model`` quantised to ``path`` and check its deciding metric against the float
    Keras model on the validation split.

    Args:
        run: the run (its data calibrates and checks).
        model: its Keras model.
        mode: dynamic or int8.
        path: the file to write (a temporary the caller renames into place).
        max_drop: the tolerance, in the metric's terms; None takes ``DEFAULT_MAX_DROP``.

    Raises:
        ExportError: the model cannot be quantised (a reason and the fix).
        DataError: the run's prepared data is gone or a split is empty (both the calibration
            and the check need it).
        ExportMismatch: the metric dropped beyond the tolerance (exit 1); ``path`` is left for
            the caller's atomic writer to remove.
    """
    metric = deciding_metric(run.task)
    limit = DEFAULT_MAX_DROP[metric] if max_drop is None else max_drop
    float_bytes = len(tflite_flatbuffer(model)[0])
    calibration = 0
    if mode == QuantizeMode.INT8:
        x_train, _ = _split(run, "train", CALIBRATION_EXAMPLES)
        calibration = _count(x_train)
        flatbuffer, used = _int8_flatbuffer(model, x_train)
        fully_integer = used == 0
    else:
        flatbuffer, _ = tflite_flatbuffer(model, _dynamic_setups())
        fully_integer = False
    path.write_bytes(flatbuffer)
    x, y = _split(run, "validation", METRIC_EXAMPLES)
    expected = _outputs(x, model.predict_on_batch)
    actual = _outputs(x, lambda part: run_tflite(path, part)).reshape(expected.shape)
    change = measure_change(run, metric, (expected, actual), y, limit)
    report = QuantizationReport(
        mode, float_bytes, len(flatbuffer), fully_integer, calibration, change
    )
    if change.drop > limit:
        raise ExportMismatch(_refusal(report))
    return report


def measure_change(
    run: RunModel, metric: str, outputs: tuple[np.ndarray, np.ndarray], y: np.ndarray, limit: float
) -> MetricChange:
    """The deciding metric of the float outputs and the quantised ones against the labels."""
    expected, actual = outputs
    if metric == "accuracy":
        stored = read_stored_threshold(run.run_dir)
        cut = stored.threshold if stored is not None and stored.kind != "anomaly" else None
        before, after = (
            float(np.mean(predicted_classes(class_probabilities(o), cut) == y))
            for o in (expected, actual)
        )
        return MetricChange(metric, before, after, before - after, limit, len(y))
    truth = np.asarray(y, dtype=np.float64)
    errors = [np.asarray(o, dtype=np.float64).reshape(truth.shape) - truth for o in outputs]
    before, after = (float(np.sqrt(np.mean(e**2))) for e in errors)
    mae_before, mae_after = (float(np.mean(np.abs(e))) for e in errors)
    drop = (after - before) / before if before > 0 else after
    return MetricChange(metric, before, after, drop, limit, len(y), mae_before, mae_after)


def _refusal(report: QuantizationReport) -> str:
    change = report.change
    if change.metric == "accuracy":
        how = (
            f"accuracy {change.quantized_value:.4f} against the float model's "
            f"{change.float_value:.4f}: {change.drop * 100:.2f} points lost, more than the "
            f"{change.max_drop * 100:.2f} allowed"
        )
    else:
        how = (
            f"RMSE {change.quantized_value:.4g} against the float model's "
            f"{change.float_value:.4g}: {change.drop:+.2%}, more than the {change.max_drop:+.2%} "
            f"allowed"
        )
    other = "--quantize dynamic (int8 weights only)" if report.mode == QuantizeMode.INT8 else ""
    return (
        f"The {report.mode.value}-quantised TFLite model loses too much on "
        f"{change.examples} validation examples: {how} (--max-metric-drop). It was not "
        f"written. Try {other + ', or ' if other else ''}the float export (drop --quantize), "
        f"or allow a larger drop with --max-metric-drop if the smaller file "
        f"({report.bytes / report.float_bytes:.0%} of the float model's size) is worth it."
    )


def _dynamic_setups() -> list[ConverterSetup]:
    def optimize(converter: Any) -> None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]

    return [_chain(optimize, setup) for setup in float_setups()]


def _int8_setups(x: Inputs) -> list[ConverterSetup]:
    """Int8 kernels only; then float kernels where an op has no int8 one. Inputs and outputs
    keep their types (the module docstring says why)."""

    def calibrate(converter: Any) -> None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: _representative(x)

    int8, builtins = tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS
    return [_chain(calibrate, op_sets(int8)), _chain(calibrate, op_sets(int8, builtins))]


def _chain(*setups: ConverterSetup) -> ConverterSetup:
    def setup(converter: Any) -> None:
        for each in setups:
            each(converter)

    return setup


def _representative(x: Inputs) -> Iterator[Any]:
    """One example at a time, as TFLite's calibrator takes them: a table's columns keyed by the
    serving signature's names (a tf.function parameter cannot hold '-'), text as bytes. (More
    than one string at a time crashes the calibrator's process.)"""
    for i in range(_count(x)):
        if isinstance(x, dict):
            yield {
                re.sub(r"[^A-Za-z0-9_]", "_", k): _tflite_value(v[i : i + 1]) for k, v in x.items()
            }
        else:
            yield [x[i : i + 1]]


def _int8_flatbuffer(model: keras.Model, x: Inputs) -> tuple[bytes, int]:
    """The model calibrated on ``x`` and converted to int8.

    Raises:
        ExportError: the calibration or conversion failed, with the converter's reason.
    """
    try:
        return tflite_flatbuffer(model, _int8_setups(x))
    except ExportError as exc:
        reason = exc.message.split("(", 1)[-1].split("). ", 1)[0]
        text = [spec.name for spec in model.inputs if str(spec.dtype) == "string"]
        known = (
            f" This model takes text inputs ({', '.join(text[:5])}{', …' if len(text) > 5 else ''}"
            f"): TFLite's calibrator feeds one example at a time, which the category "
            f"encoders of a model trained by an older dltrain cannot take; train it again."
            if text
            else ""
        )
        raise ExportError(
            f"Full-integer quantisation (--quantize int8) failed while calibrating on "
            f"{_count(x)} training examples ({reason}).{known} Use --quantize dynamic, which "
            f"stores the weights as int8 and needs no calibration."
        ) from None


def _split(run: RunModel, split: str, size: int) -> tuple[Inputs, np.ndarray]:
    """Up to ``size`` examples of a split, keyed as the model takes them, with their labels.

    Raises:
        DataError: the run's prepared data cannot be read, or the split is empty.
    """
    from dltrain.data.streaming import head_rows
    from dltrain.evaluation.examples import prepared_dataset

    purpose = "calibrates on" if split == "train" else "is checked on"
    try:
        # the split's first rows, reading only the shards that hold them: a split may be
        # larger than memory (a streamed run's)
        x, y = head_rows(prepared_dataset(run), split, size)
    except (DataError, RunError) as exc:
        raise DataError(
            f"A quantised export {purpose} the run's prepared {split} split, which cannot be "
            f"read: {exc.message.split('. ')[0].rstrip('.')}. Prepare the data again with the "
            f"run's recipe (`dltrain prepare --recipe {run.files.recipe}`), or export unquantised "
            f"(drop --quantize)."
        ) from None
    if len(y) == 0:
        raise DataError(
            f"A quantised export {purpose} the run's {split} split, which is empty. Prepare the "
            f"data with a {split} share (data.split), or export unquantised (drop --quantize)."
        )
    return run.manifest.model_inputs(x), np.asarray(y)


def _chunks(x: Inputs) -> Iterator[Inputs]:
    """The examples in chunks of at most ``CHUNK`` (a lone last row is fine: the export check
    runs a one-row batch too)."""
    for start in range(0, _count(x), CHUNK):
        stop = start + CHUNK
        yield {k: v[start:stop] for k, v in x.items()} if isinstance(x, dict) else x[start:stop]


def _outputs(x: Inputs, run: Callable[[Inputs], Any]) -> np.ndarray:
    return np.concatenate([np.asarray(run(part)) for part in _chunks(x)])
