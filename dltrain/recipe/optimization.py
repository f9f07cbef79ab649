"""The recipe's optimiser and learning-rate schedule (`train.optimizer`, `train.lr_schedule`).
Light: pydantic only."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from dltrain.recipe.averaging import EmaSpec
from dltrain.recipe.choices import OptimizerName, ScheduleName, SchedulePace
from dltrain.recipe.section import Section

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
    ema: EmaSpec = Field(
        default_factory=EmaSpec,
        description="Validate, checkpoint and save the moving average of the weights "
        "(training/averaging.py).",
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
    pct_start: float = Field(
        0.25,
        gt=0,
        lt=1,
        description="one_cycle: the fraction of the run the rate spends rising to its peak "
        "(the optimizer's learning_rate).",
    )
    div_factor: float = Field(
        25.0, ge=1, description="one_cycle: the rate starts at learning_rate / div_factor."
    )
    final_div_factor: float = Field(
        1e5, ge=1, description="one_cycle: the rate ends at learning_rate / final_div_factor."
    )
    momentum_range: tuple[Annotated[float, Field(ge=0, lt=1)], ...] | None = Field(
        (0.95, 0.85),
        min_length=2,
        max_length=2,
        description="one_cycle: momentum (momentum, nesterov) or beta_1 (adam, adamw, nadam, "
        "adamax) goes from the first value to the second while the rate rises and back while "
        "it falls; null keeps the optimizer's own.",
    )
    pace: SchedulePace = Field(
        SchedulePace.EPOCHS,
        description="epochs: the schedule spans train.epochs. time_budget: it also keeps pace "
        "with train.time_budget, so it ends when the epochs or the budget run out, whichever "
        "comes first (slow epochs no longer cut a decay short); needs train.time_budget.",
    )
    reduce_on_plateau: PlateauSpec = Field(default_factory=PlateauSpec)

    @model_validator(mode="after")
    def _one_cycle_warms_up_itself(self) -> ScheduleSpec:
        if self.name == ScheduleName.ONE_CYCLE and self.warmup_epochs > 0:
            raise ValueError(
                "`warmup_epochs` does not combine with the one_cycle schedule, which rises to "
                "its peak over its own first `pct_start` of the run. Remove warmup_epochs or "
                f"set pct_start instead. Received: warmup_epochs={self.warmup_epochs}"
            )
        return self

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
