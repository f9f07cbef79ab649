"""Gate expressions as a recipe writes them (``evaluate.require``) and ``--require`` adds. Light.

A gate is ``metric OP number`` with OP one of ``>=``, ``<=``, ``>``, ``<``. The metric is any
headline metric of the task or a per-class one written ``recall[cat]``. Parsing lives in the
recipe layer because validating a recipe parses its gates; checking them against an evaluation's
numbers is ``dltrain.evaluation.gates``.
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
    r"(?P<op>>=|<=|>|<)\s*(?P<bound>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$"
)


@dataclass(frozen=True)
class Gate:
    """One parsed gate: ``recall[cat] >= 0.8`` is metric ``recall[cat]``, ``>=``, ``0.8``."""

    text: str
    metric: str  # "accuracy", or "recall[cat]" for a per-class metric
    operator: str
    bound: float

    @property
    def base(self) -> str:
        return self.metric.split("[", 1)[0]

    @property
    def class_name(self) -> str | None:
        return self.metric[len(self.base) + 1 : -1] if "[" in self.metric else None

    def holds(self, value: float) -> bool:
        return _OPERATORS[self.operator](value, self.bound)


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
            f"Gate {text!r} does not parse. Expected `metric OP number` with OP one of >=, <=, "
            f'>, <, for example --require "accuracy>=0.9" or --require "recall[cat]>=0.8" '
            f"(quote it, or the shell reads > as a redirection)."
        )
    return Gate(text.strip(), match["metric"], match["op"], float(match["bound"]))
