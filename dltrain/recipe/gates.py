"""Gate expressions as a recipe writes them (``evaluate.require``) and ``--require`` adds. Light.

A gate is ``metric OP number`` with OP one of ``>=``, ``<=``, ``>``, ``<``. The metric is any
headline metric of the task or a per-class one written ``recall[cat]``. In place of the number a
gate may name a baseline's value on the same examples, ``baseline.NAME.METRIC``
(``rmse<=baseline.gbm.rmse``, ``accuracy>baseline.prior.accuracy``); evaluate fills it in.
Parsing lives in the recipe layer because validating a recipe parses its gates; checking them
against an evaluation's numbers is ``dltrain.evaluation.gates``.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

from dltrain.errors import UsageError

_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}
_GATE = re.compile(
    r"^\s*(?P<metric>[A-Za-z_][A-Za-z0-9_]*(?:\[(?P<cls>[^\]]+)\])?)\s*"
    r"(?P<op>>=|<=|>|<)\s*(?:(?P<bound>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"
    r"|baseline\.(?P<baseline>[A-Za-z_][A-Za-z0-9_]*)\.(?P<of>[A-Za-z_][A-Za-z0-9_]*))\s*$"
)


@dataclass(frozen=True)
class Gate:
    """One parsed gate: ``recall[cat] >= 0.8`` is metric ``recall[cat]``, ``>=``, ``0.8``.

    A gate against a baseline (``rmse<=baseline.gbm.rmse``) has ``against`` set and its bound
    NaN until :meth:`with_bound` fills in the baseline's value.
    """

    text: str
    metric: str  # "accuracy", or "recall[cat]" for a per-class metric
    operator: str
    bound: float
    against: BaselineRef | None = None

    @property
    def base(self) -> str:
        return self.metric.split("[", 1)[0]

    @property
    def class_name(self) -> str | None:
        return self.metric[len(self.base) + 1 : -1] if "[" in self.metric else None

    def holds(self, value: float) -> bool:
        return _OPERATORS[self.operator](value, self.bound)

    def with_bound(self, bound: float) -> Gate:
        """The gate with its bound filled in (a baseline's value on the evaluated examples)."""
        return Gate(self.text, self.metric, self.operator, bound, self.against)


@dataclass(frozen=True)
class BaselineRef:
    """``baseline.gbm.rmse`` in a gate: the baseline ``gbm``'s metric ``rmse``."""

    name: str
    metric: str

    @property
    def text(self) -> str:
        return f"baseline.{self.name}.{self.metric}"


def parse_gate(text: str) -> Gate:
    """Parse one gate expression such as ``f1_macro>=0.85``.

    Args:
        text: the gate as typed.

    Returns:
        The gate, its text stripped.

    Raises:
        UsageError: the text is not ``metric OP number``.
    """
    match = _GATE.match(text)
    if match is None:
        raise UsageError(
            f"Gate {text!r} does not parse. Expected `metric OP number` or `metric OP "
            f"baseline.NAME.METRIC` with OP one of >=, <=, >, <, for example --require "
            f'"accuracy>=0.9", --require "recall[cat]>=0.8" or --require '
            f'"rmse<=baseline.gbm.rmse" (quote it, or the shell reads > as a redirection).'
        )
    if match["baseline"] is not None:
        against = BaselineRef(match["baseline"], match["of"])
        return Gate(text.strip(), match["metric"], match["op"], float("nan"), against)
    return Gate(text.strip(), match["metric"], match["op"], float(match["bound"]))
