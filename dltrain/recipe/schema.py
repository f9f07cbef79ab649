"""The typed recipe: what data, which model, how to train, how to judge.

Every section forbids unknown keys, so a typo is an error that names the key rather than a
setting silently ignored. Defaults are the values we would pick for a first run, with the reason
next to the ones that are not obvious.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator

from dltrain.errors import UsageError
from dltrain.recipe.averaging import SwaSpec
from dltrain.recipe.choices import InputMode, ScheduleName, SchedulePace, SplitName
from dltrain.recipe.data import DataFormat, DataSpec, Scaling, SplitSpec
from dltrain.recipe.fields import Duration
from dltrain.recipe.gates import parse_gate
from dltrain.recipe.models import CnnSpec, ModelSpec
from dltrain.recipe.optimization import OptimizerSpec, ScheduleSpec
from dltrain.recipe.section import Section
from dltrain.recipe.tune import TuneSpec

# --- data: DataSpec and its parts live in recipe/data.py -------------------------------------

__all__ = ["DataFormat", "DataSpec", "Scaling", "SplitSpec"]


# --- model: one class per family, in recipe/models.py ---------------------------------------

# --- training ---------------------------------------------------------------------------------


class LossName(StrEnum):
    AUTO = "auto"  # cross-entropy for classes, mean squared error for numbers
    MSE = "mse"
    MAE = "mae"
    HUBER = "huber"
    BINARY_CROSSENTROPY = "binary_crossentropy"
    CATEGORICAL_CROSSENTROPY = "categorical_crossentropy"
    SPARSE_CATEGORICAL_CROSSENTROPY = "sparse_categorical_crossentropy"
    FOCAL = "focal"


CROSSENTROPY_LOSSES = (
    LossName.BINARY_CROSSENTROPY,
    LossName.CATEGORICAL_CROSSENTROPY,
    LossName.SPARSE_CATEGORICAL_CROSSENTROPY,
)


FocalAlpha = Annotated[float, Field(gt=0, lt=1)] | list[Annotated[float, Field(ge=0)]] | None


class LossSpec(Section):
    """The training loss. Labels stay integer class indices whichever cross-entropy is named."""

    name: LossName = LossName.AUTO
    label_smoothing: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="cross-entropy and focal: train on targets (1 − ε)·one-hot + ε/classes.",
    )
    gamma: float = Field(
        2.0, ge=0, description="focal: −α(1 − p)^gamma·log p; 0 is plain cross-entropy."
    )
    alpha: FocalAlpha = Field(
        None,
        description="focal: class balance. A number: binary, the positive class's weight (the "
        "negative gets 1 − alpha); multiclass, one weight for all. A list: one weight per class. "
        "Unset: 1 for every class.",
    )
    delta: float = Field(
        1.0, gt=0, description="huber: errors below delta are squared, above it linear."
    )

    @model_validator(mode="after")
    def _settings_of_this_loss(self) -> LossSpec:
        # A setting the chosen loss ignores is almost always a mistake (a forgotten `name`).
        uses = {
            "label_smoothing": (LossName.AUTO, LossName.FOCAL, *CROSSENTROPY_LOSSES),
            "gamma": (LossName.FOCAL,),
            "alpha": (LossName.FOCAL,),
            "delta": (LossName.HUBER,),
        }
        for key, losses in uses.items():
            # Only a value other than the default counts: a resolved recipe (run folders keep
            # one) spells out every default and must load again.
            default = type(self).model_fields[key].default
            if getattr(self, key) != default and self.name not in losses:
                names = ", ".join(loss.value for loss in losses)
                raise ValueError(
                    f"`{key}` applies to the {names} loss(es), not {self.name.value}. Remove it "
                    f"or change `name`. Received: name={self.name.value}, "
                    f"{key}={getattr(self, key)}"
                )
        return self


def _class_weight_setting(value: Any) -> Any:
    """``balanced``, ``None`` or a mapping {class index or name: weight}, keys as strings."""
    if value is None or value == "balanced":
        return value
    if isinstance(value, dict):
        weights: dict[str, float] = {}
        for key, weight in value.items():
            if isinstance(weight, bool) or not isinstance(weight, int | float) or weight <= 0:
                raise ValueError(
                    f"`class_weight` weights must be positive numbers. Received: {key}: {weight!r}"
                )
            weights[str(key)] = float(weight)
        return weights
    raise ValueError(
        "`class_weight` must be balanced (weights n / (classes × count) from the prepared "
        "training split), a mapping {class index or name: weight} (unlisted classes weigh 1), "
        f"or null. Received: {value!r}"
    )


ClassWeight = Annotated[
    Literal["balanced"] | dict[str, float] | None, BeforeValidator(_class_weight_setting)
]


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


class Tracking(StrEnum):
    NONE = "none"
    MLFLOW = "mlflow"


class Calibration(StrEnum):
    NONE = "none"
    TEMPERATURE = "temperature"


class TrainSpec(Section):
    epochs: int = Field(10, gt=0, le=100_000)
    batch_size: int = Field(128, gt=0, le=1_000_000)
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec)
    lr_schedule: ScheduleSpec = Field(default_factory=ScheduleSpec)
    early_stopping: EarlyStoppingSpec = Field(default_factory=EarlyStoppingSpec)
    shuffle: bool = True
    time_budget: Duration | None = Field(
        None,
        description="Stop gracefully after this long (90s, 10m, 1h30m, 1d), keeping the best "
        "weights.",
    )
    deterministic: bool = Field(
        False, description="Deterministic TensorFlow ops: identical reruns, somewhat slower."
    )
    mixed_precision: Switch = Field(
        Switch.AUTO,
        description="auto: on for GPUs of compute capability >= 7.0, off on CPU. on: float16 "
        "on GPUs, bfloat16 on CPUs (faster only where the CPU has bfloat16 instructions).",
    )
    jit_compile: Switch = Field(
        Switch.AUTO, description="XLA. auto: Keras's choice on GPU, off on CPU (slower there)."
    )
    tensorboard: bool = Field(True, description="Write TensorBoard event files into the run.")
    tracking: Tracking = Field(
        Tracking.NONE,
        description="mlflow: log params, every epoch's metrics and the run's files to MLflow "
        "(the `mlflow` extra); evaluate and tune log there too (--track).",
    )
    calibration: Calibration = Field(
        Calibration.NONE,
        description="Classifiers: temperature: after training, fit one temperature T on the "
        "validation split (least log loss) and store it in the saved model, so its "
        "probabilities are calibrated; predictions (argmax) do not change.",
    )
    tracking_uri: str | None = Field(
        None,
        description="MLflow tracking URI (http://host:5000, sqlite:///…); default "
        "sqlite:///<workdir>/mlflow.db, artifacts in <workdir>/mlartifacts/.",
    )
    loss: LossSpec = Field(default_factory=LossSpec)
    class_weight: ClassWeight = Field(
        None,
        description="Weigh each class's examples in the loss: balanced, {class: weight}, or null.",
    )
    input: InputMode = Field(
        InputMode.AUTO,
        description="How training, evaluation and find-lr read the prepared splits: memory (read "
        "whole once), stream (the shards from disk every epoch, flat memory at any size) or auto "
        "(memory while the splits are small enough, else stream); run.json says which ran.",
    )
    folds: int | None = Field(
        None,
        ge=2,
        le=100,
        description="K-fold cross-validation over the training and validation rows (the test "
        "split untouched): K runs, out-of-fold metrics, one model averaging the K (--folds).",
    )
    swa: SwaSpec = Field(default_factory=SwaSpec)

    @model_validator(mode="after")
    def _one_average(self) -> TrainSpec:
        if self.swa.enabled and self.optimizer.ema.enabled:
            raise ValueError(
                "`train.swa` and `train.optimizer.ema` each replace the trained weights by an "
                "average of them; enable one of the two."
            )
        if self.swa.enabled and self.swa.first_epoch(self.epochs) > self.epochs:
            raise ValueError(
                f"`train.swa.start_epoch` is {self.swa.start_epoch:g}, after the run's last "
                f"epoch ({self.epochs}): nothing would be averaged. Expected an epoch up to "
                f"{self.epochs}, or a fraction such as 0.75."
            )
        return self

    @model_validator(mode="after")
    def _paced_by_a_budget(self) -> TrainSpec:
        schedule = self.lr_schedule
        if schedule.pace != SchedulePace.TIME_BUDGET:
            return self
        if self.time_budget is None:
            raise ValueError(
                "`train.lr_schedule.pace` is time_budget, but the recipe sets no "
                "`train.time_budget` to keep pace with. Set one (train.time_budget: 15m, or "
                "--time-budget 15m), or remove pace to count the schedule in epochs."
            )
        if schedule.name == ScheduleName.CONSTANT and schedule.warmup_epochs == 0:
            raise ValueError(
                "`train.lr_schedule.pace` is time_budget, but the rate is constant: there is "
                "no schedule to pace. Name a schedule (cosine, one_cycle, ...) or remove pace."
            )
        if self.deterministic:
            raise ValueError(
                "`train.deterministic` asks for identical reruns, but `train.lr_schedule.pace` "
                "is time_budget: the rate then follows the clock, which no rerun repeats. "
                "Remove one of the two."
            )
        return self

    @model_validator(mode="after")
    def _cycled_momentum_or_fixed(self) -> TrainSpec:
        schedule = self.lr_schedule
        if (
            schedule.name == ScheduleName.ONE_CYCLE
            and schedule.momentum_range is not None
            and self.optimizer.momentum is not None
        ):
            raise ValueError(
                "`train.optimizer.momentum` is set, but the one_cycle schedule cycles the "
                "momentum through `train.lr_schedule.momentum_range`. Remove one: "
                "momentum_range: null keeps a fixed momentum. Received: momentum="
                f"{self.optimizer.momentum}, momentum_range={list(schedule.momentum_range)}"
            )
        return self


# --- evaluation -------------------------------------------------------------------------------


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
    importance: bool = Field(
        False,
        description="Tables: permutation feature importance, the drop of the deciding metric "
        "when each input column is shuffled (--importance).",
    )
    importance_repeats: int = Field(
        5, ge=2, le=100, description="Shuffles per column; the interval is over them."
    )
    importance_rows: int = Field(
        5000,
        ge=10,
        le=1_000_000,
        description="Importance scores at most this many rows (a seeded sample): its cost is "
        "columns × repeats predictions of them.",
    )

    @model_validator(mode="after")
    def _gates_parse(self) -> EvaluateSpec:
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
    tune: TuneSpec | None = Field(
        None, description="What `dltrain tune` searches; see dltrain/recipe/tune.py."
    )
