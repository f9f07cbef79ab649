"""The typed recipe: what data, which model, how to train, how to judge.

Every section forbids unknown keys, so a typo is an error that names the key rather than a
setting silently ignored. Defaults are the values we would pick for a first run, with the reason
next to the ones that are not obvious.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from dltrain.errors import UsageError
from dltrain.recipe.choices import InputMode, OptimizerName, ScheduleName, SplitName
from dltrain.recipe.data import DataFormat, DataSpec, Scaling, SplitSpec
from dltrain.recipe.fields import Duration
from dltrain.recipe.gates import parse_gate
from dltrain.recipe.models import CnnSpec, ModelSpec
from dltrain.recipe.tune import TuneSpec


class Section(BaseModel):
    # inf passes bounds such as gt=0 (and nan fails them with a puzzling message); every
    # number a recipe holds is finite, so both are refused as what they are.
    model_config = ConfigDict(
        extra="forbid", validate_assignment=True, use_enum_values=False, allow_inf_nan=False
    )


# --- data: DataSpec and its parts live in recipe/data.py -------------------------------------

__all__ = ["DataFormat", "DataSpec", "Scaling", "SplitSpec"]


# --- model: one class per family, in recipe/models.py ---------------------------------------

# --- training ---------------------------------------------------------------------------------


# Optimizers whose Keras class has a `momentum` argument (sgd's defaults to 0, plain SGD).
MOMENTUM_OPTIMIZERS = (
    OptimizerName.SGD,
    OptimizerName.MOMENTUM,
    OptimizerName.NESTEROV,
    OptimizerName.RMSPROP,
)


class OptimizerSpec(Section):
    name: OptimizerName = OptimizerName.ADAM
    learning_rate: float = Field(1e-3, gt=0, le=10)
    momentum: float | None = Field(
        None,
        ge=0,
        lt=1,
        description="momentum and nesterov: 0.9 when unset; sgd and rmsprop: 0.0 when unset "
        "(Keras's).",
    )
    weight_decay: float | None = Field(
        None, ge=0, description="Decoupled weight decay (adamw defaults to 0.004 as in Keras)."
    )
    clipnorm: float | None = Field(None, gt=0, description="Clip each gradient to this norm.")
    clipvalue: float | None = Field(None, gt=0, description="Clip each gradient element.")
    global_clipnorm: float | None = Field(
        None, gt=0, description="Clip all gradients together to this norm."
    )
    gradient_accumulation_steps: int | None = Field(
        None,
        ge=1,
        le=10_000,
        description="Average the gradients of this many batches before each update, so the "
        "effective batch is batch_size × this at the memory cost of one batch (1 or unset: off).",
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

    @model_validator(mode="after")
    def _momentum_where_it_exists(self) -> OptimizerSpec:
        # Silently dropping a momentum the optimizer has no use for would hide a mistake.
        if self.momentum is not None and self.name not in MOMENTUM_OPTIMIZERS:
            raise ValueError(
                f"`momentum` applies to sgd, momentum, nesterov and rmsprop; {self.name.value} has "
                f"no momentum setting (adam-like optimizers keep their own moving averages). "
                f"Remove it or pick one of those optimizers. Received: name={self.name.value}, "
                f"momentum={self.momentum}"
            )
        return self


class PlateauSpec(Section):
    """Lower the learning rate when a logged metric stops improving, on top of any schedule."""

    enabled: bool = False
    monitor: str = "val_loss"
    mode: Literal["auto", "min", "max"] = "auto"
    factor: float = Field(
        0.5,
        gt=0,
        lt=1,
        description="Multiply the rate by this at each plateau. 0.5 rather than Keras's 0.1: "
        "several gentle steps fit inside early stopping's patience.",
    )
    patience: int = Field(
        2, ge=0, description="Epochs without improvement before lowering (below early stopping's)."
    )
    min_delta: float = Field(0.0, ge=0, description="Smallest change that counts as improvement.")
    cooldown: int = Field(0, ge=0, description="Epochs to wait after a reduction before counting.")
    min_learning_rate: float = Field(
        0.0, ge=0, description="Reductions never take the rate below this (the schedule may)."
    )


class ScheduleSpec(Section):
    """A learning-rate schedule over the whole run; every parameter counts in epochs."""

    name: ScheduleName = ScheduleName.CONSTANT
    gamma: float = Field(
        0.5,
        gt=0,
        le=1,
        description="exponential: lr0·gamma^epoch; step: multiply by gamma every step_epochs "
        "(or at each of `boundaries`).",
    )
    step_epochs: int = Field(5, gt=0, description="step: epochs between two decays.")
    boundaries: list[Annotated[float, Field(gt=0)]] | None = Field(
        None,
        min_length=1,
        description="step: the epochs at which the rate is multiplied by gamma, instead of every "
        "step_epochs (e.g. [30, 60, 80]).",
    )
    min_learning_rate: float = Field(
        0.0,
        ge=0,
        description="cosine, cosine_restarts, polynomial: the floor the decay reaches.",
    )
    restart_epochs: float = Field(
        5, gt=0, description="cosine_restarts: epochs of the first cycle (SGDR's T_0)."
    )
    restart_period_mult: float = Field(
        2.0, ge=1, description="cosine_restarts: each cycle is this many times longer than the last"
    )
    restart_peak_mult: float = Field(
        1.0,
        gt=0,
        le=1,
        description="cosine_restarts: each cycle's height above the floor is this × the last's.",
    )
    power: float = Field(
        1.0, gt=0, description="polynomial: the decay's exponent (1 is a straight line)."
    )
    decay_rate: float = Field(
        0.5, gt=0, description="inverse_time: lr0 / (1 + decay_rate · epoch)."
    )
    warmup_epochs: float = Field(
        0.0,
        ge=0,
        description="Ramp the rate linearly up to lr0 over this many epochs (fractions allowed), "
        "then run the schedule; works with every schedule.",
    )
    warmup_start_factor: float = Field(
        0.0, ge=0, lt=1, description="The ramp starts at this × lr0 (0: from nearly zero)."
    )
    reduce_on_plateau: PlateauSpec = Field(default_factory=PlateauSpec)

    @model_validator(mode="after")
    def _one_step_rule(self) -> ScheduleSpec:
        if self.boundaries is None:
            return self
        pairs = zip(self.boundaries, self.boundaries[1:], strict=False)
        if any(later <= earlier for earlier, later in pairs):
            raise ValueError(
                f"`boundaries` must be increasing epochs, for example [30, 60, 80]. "
                f"Received: boundaries={self.boundaries}"
            )
        if self.step_epochs != type(self).model_fields["step_epochs"].default:
            raise ValueError(
                f"Set either `step_epochs` (decay at regular intervals) or `boundaries` (decay at "
                f"the listed epochs), not both. Received: step_epochs={self.step_epochs}, "
                f"boundaries={self.boundaries}"
            )
        return self


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
        Switch.AUTO, description="auto: on for GPUs of compute capability >= 7.0, off on CPU."
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
