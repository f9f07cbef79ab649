"""The typed recipe: what data, which model, how to train, how to judge.

Every section forbids unknown keys, so a typo is an error that names the key rather than a
setting silently ignored. Defaults are the values we would pick for a first run, with the reason
next to the ones that are not obvious.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from dltrain.recipe.models import CnnSpec, ModelSpec


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, use_enum_values=False)


# --- data -------------------------------------------------------------------------------------


class DataFormat(StrEnum):
    AUTO = "auto"
    IDX = "idx"
    NPZ = "npz"


class Scaling(StrEnum):
    """How pixel values are rescaled; the statistics go into the model as its first layer."""

    NONE = "none"
    UNIT = "unit"  # [0, 1]
    SYMMETRIC = "symmetric"  # [-1, 1]
    STANDARD = "standard"  # mean 0, variance 1, statistics from the training split only


class SplitSpec(Section):
    validation: float = Field(
        0.1, gt=0, lt=1, description="Share of the training pool held out for validation."
    )
    test: float = Field(
        0.1,
        gt=0,
        lt=1,
        description="Share held out for test; used only when the source has no test set.",
    )
    stratify: bool = Field(True, description="Keep class proportions equal across splits.")

    @model_validator(mode="after")
    def _leave_something_to_train(self) -> SplitSpec:
        if self.validation + self.test >= 0.9:
            raise ValueError(
                f"validation + test must leave at least 10% to train on. "
                f"Received: validation={self.validation}, test={self.test}"
            )
        return self


class DataSpec(Section):
    source: Path = Field(
        description="File or folder holding the raw data; relative paths are read from the "
        "recipe file's folder."
    )
    format: DataFormat = DataFormat.AUTO
    split: SplitSpec = Field(default_factory=SplitSpec)
    scaling: Scaling = Scaling.UNIT
    classes: list[str] | None = Field(
        None, description="Names of the classes, in label order (labels 0, 1, …) for reports."
    )


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
