"""The recipe's averaged weights: an exponential moving average (``train.optimizer.ema``) or
stochastic weight averaging (``train.swa``). Light: pydantic only."""

from __future__ import annotations

from pydantic import Field, model_validator

from dltrain.recipe.section import Section


class EmaSpec(Section):
    """An exponential moving average of the weights, kept by the optimizer (Keras's use_ema)."""

    enabled: bool = False
    momentum: float = Field(
        0.99,
        gt=0,
        lt=1,
        description="average = momentum·average + (1 − momentum)·weights after every step; "
        "0.99 averages about the last 100 steps, 0.999 the last 1000.",
    )


class SwaSpec(Section):
    """Stochastic weight averaging: the mean of the weights at the end of each epoch from
    ``start_epoch`` on (Izmailov et al. 2018), batch-norm statistics recomputed for it."""

    enabled: bool = False
    start_epoch: float = Field(
        0.75,
        gt=0,
        description="Below 1: the fraction of train.epochs after which averaging starts (0.75: "
        "the last quarter); 1 or more: the first epoch (counted from 1) whose weights are "
        "averaged.",
    )

    @model_validator(mode="after")
    def _whole_epoch(self) -> SwaSpec:
        if self.start_epoch >= 1 and not float(self.start_epoch).is_integer():
            raise ValueError(
                "`start_epoch` is either a fraction of the run below 1 (0.75) or a whole epoch "
                f"number (30). Received: start_epoch={self.start_epoch}"
            )
        return self

    def first_epoch(self, epochs: int) -> int:
        """The first epoch (counted from 1) whose weights enter the average."""
        if self.start_epoch >= 1:
            return int(self.start_epoch)
        return min(epochs, max(1, int(epochs * self.start_epoch) + 1))
