"""The typed recipe: what data, which model, how to train, how to judge.

Every section forbids unknown keys, so a typo is an error that names the key rather than a
setting silently ignored. Defaults are the values we would pick for a first run, with the reason
next to the ones that are not obvious.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from dltrain.recipe.data import DataFormat, DataSpec, Scaling, SplitSpec
from dltrain.recipe.models import CnnSpec, ModelSpec


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, use_enum_values=False)


# --- data: DataSpec and its parts live in recipe/data.py -------------------------------------

__all__ = ["DataFormat", "DataSpec", "Scaling", "SplitSpec"]


# --- model: one class per family, in recipe/models.py ---------------------------------------

# --- training ---------------------------------------------------------------------------------


class OptimizerName(StrEnum):
    SGD = "sgd"
    MOMENTUM = "momentum"
    NESTEROV = "nesterov"
    ADAGRAD = "adagrad"
    RMSPROP = "rmsprop"
    ADAM = "adam"
    ADAMW = "adamw"
    NADAM = "nadam"


class OptimizerSpec(Section):
    name: OptimizerName = OptimizerName.ADAM
    learning_rate: float = Field(1e-3, gt=0, le=10)
    momentum: float | None = Field(
        None,
        ge=0,
        lt=1,
        description="momentum and nesterov: 0.9 when unset; rmsprop: 0.0 when unset (Keras's).",
    )
    weight_decay: float | None = Field(
        None, ge=0, description="Decoupled weight decay (adamw defaults to 0.004 as in Keras)."
    )
    clipnorm: float | None = Field(None, gt=0, description="Clip each gradient to this norm.")
    clipvalue: float | None = Field(None, gt=0, description="Clip each gradient element.")
    global_clipnorm: float | None = Field(
        None, gt=0, description="Clip all gradients together to this norm."
    )

    @model_validator(mode="after")
    def _one_clipping_mode(self) -> OptimizerSpec:
        given = {k: getattr(self, k) for k in ("clipnorm", "clipvalue", "global_clipnorm")}
        given = {k: v for k, v in given.items() if v is not None}
        if len(given) > 1:  # Keras accepts one of the three
            received = ", ".join(f"{k}={v}" for k, v in given.items())
            raise ValueError(
                "Set only one of `clipnorm`, `clipvalue` and `global_clipnorm`. "
                f"Received: {received}"
            )
        return self


class ScheduleName(StrEnum):
    CONSTANT = "constant"
    EXPONENTIAL = "exponential"
    STEP = "step"
    COSINE = "cosine"


class ScheduleSpec(Section):
    """A learning-rate schedule over the whole run; every parameter counts in epochs."""

    name: ScheduleName = ScheduleName.CONSTANT
    gamma: float = Field(
        0.5,
        gt=0,
        le=1,
        description="exponential: lr0·gamma^epoch; step: multiply by gamma every step_epochs.",
    )
    step_epochs: int = Field(5, gt=0, description="step: epochs between two decays.")
    min_learning_rate: float = Field(0.0, ge=0, description="cosine: the floor reached at the end.")


class EarlyStoppingSpec(Section):
    enabled: bool = True
    monitor: str = "val_loss"
    mode: Literal["auto", "min", "max"] = "auto"
    patience: int = Field(5, ge=0)
    min_delta: float = Field(0.0, ge=0)
    start_epoch: int = Field(
        0, ge=0, description="Epochs to wait before watching the monitor (warm-up noise)."
    )
    restore_best_weights: bool = True


class Switch(StrEnum):
    AUTO = "auto"
    ON = "on"
    OFF = "off"


def _parse_duration(value: Any) -> Any:
    """``90``, ``"90s"``, ``"10m"``, ``"1h30m"`` → seconds."""
    if isinstance(value, str):
        match = re.fullmatch(
            r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*", value
        )
        if not value.strip() or match is None:
            raise ValueError(f"expected a duration such as 90s, 10m or 1h30m. Received: {value!r}")
        hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
        return hours * 3600 + minutes * 60 + seconds
    return value


Duration = Annotated[float, BeforeValidator(_parse_duration), Field(gt=0)]


class TrainSpec(Section):
    epochs: int = Field(10, gt=0, le=100_000)
    batch_size: int = Field(128, gt=0, le=1_000_000)
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec)
    lr_schedule: ScheduleSpec = Field(default_factory=ScheduleSpec)
    early_stopping: EarlyStoppingSpec = Field(default_factory=EarlyStoppingSpec)
    shuffle: bool = True
    time_budget: Duration | None = Field(
        None,
        description="Stop gracefully after this long (90s, 10m, 1h30m) and keep the best weights.",
    )
    deterministic: bool = Field(
        False, description="Deterministic TensorFlow ops: identical reruns, somewhat slower."
    )
    mixed_precision: Switch = Field(
        Switch.AUTO, description="auto: on for GPUs of compute capability >= 7.0, off on CPU."
    )
    jit_compile: Switch = Field(
        Switch.AUTO, description="XLA. auto: Keras's choice on GPU, off on CPU (slower there)."
    )
    tensorboard: bool = Field(True, description="Write TensorBoard event files into the run.")


# --- evaluation -------------------------------------------------------------------------------


class SplitName(StrEnum):
    TRAIN = "train"
    VALIDATION = "validation"
    TEST = "test"


class EvaluateSpec(Section):
    split: SplitName = SplitName.TEST
    batch_size: int = Field(512, gt=0)
    require: list[str] = Field(
        default_factory=list,
        description="Gates such as 'accuracy>=0.9' or 'recall[cat]>=0.8': evaluate exits 1 when "
        "one fails. --require on the command line adds to these.",
    )
    tolerance: float = Field(
        0.0,
        ge=0,
        description="--baseline: the largest drop of a metric (in its units) that still passes.",
    )
    bootstrap: int = Field(
        0,
        ge=0,
        le=100_000,
        description="Bootstrap resamples for 95% confidence intervals (0: none; 1000 is typical).",
    )
    top_k: int = Field(3, gt=0, description="k of top-k accuracy (reported above k classes).")
    calibration_bins: int = Field(
        15, ge=2, le=1000, description="Equal-width bins of the expected calibration error."
    )
    anomaly_percentile: float = Field(
        99.0,
        gt=0,
        lt=100,
        description="Autoencoders: errors above this percentile of the validation split's "
        "reconstruction errors are anomalies.",
    )
    plots: bool = Field(True, description="Write PNG plots into the run folder.")

    @model_validator(mode="after")
    def _gates_parse(self) -> EvaluateSpec:
        from dltrain.errors import UsageError
        from dltrain.evaluation.gates import parse_gate  # light: no TensorFlow

        for text in self.require:
            try:
                parse_gate(text)
            except UsageError as exc:
                raise ValueError(f"`evaluate.require`: {exc.message}") from None
        return self


# --- the recipe -------------------------------------------------------------------------------


class Recipe(Section):
    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        max_length=100,
        description="Names data/<name>/ and runs/<name>/.",
    )
    description: str = ""
    seed: int = Field(42, ge=0, le=2**31 - 1)
    data: DataSpec
    model: ModelSpec = Field(default_factory=CnnSpec)
    train: TrainSpec = Field(default_factory=TrainSpec)
    evaluate: EvaluateSpec = Field(default_factory=EvaluateSpec)
