"""Reading YAML as a recipe's author means it, and never past what a recipe can need.

PyYAML's safe loader follows YAML 1.1, which surprises people in three ways this loader mends:
- ``on``, ``off``, ``yes``, ``no`` (and ``y``, ``n``) are booleans there, so the documented
  ``mixed_precision: on`` and a column named ``No`` arrive as ``True``/``False``. Here only
  ``true`` and ``false`` are booleans (YAML 1.2), and ``1e-3`` is a number as in YAML 1.2.
- a key given twice keeps the last value silently; here it is an error naming both lines.
- aliases expand without limit (a few hundred bytes can stand for billions of values), and
  nesting recurses without limit; here both are bounded and refused in milliseconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.events import AliasEvent, CollectionEndEvent, CollectionStartEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_BYTES = 1 << 20  # a recipe is a few kilobytes; a megabyte is already not a recipe
MAX_DEPTH = 64  # the deepest real recipe nests 5 levels
MAX_VALUES = 100_000  # values after alias expansion: tune spaces and column lists stay far below

_BOOL = "tag:yaml.org,2002:bool"
_FLOAT = "tag:yaml.org,2002:float"


class RecipeYamlError(ValueError):
    """YAML that parses but that a recipe must not be: what is wrong, and where."""

    def __init__(self, problem: str, line: int | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.line = line


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2's booleans and exponent floats, refusing duplicate keys."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int | None] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *defaults` overriding a merged key is what merges are for
            key = self.construct_object(key_node, deep=True)
            line = _line(key_node.start_mark)
            if isinstance(key, str | int | float | bool) and key in seen:
                raise RecipeYamlError(
                    f"the key {key!r} is given twice (lines {seen[key]} and {line}); YAML would "
                    f"keep only the second and silently drop the first"
                )
            if isinstance(key, str | int | float | bool):
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _yaml_12_resolvers() -> dict[Any, list[tuple[str, re.Pattern[str]]]]:
    resolvers = {
        first: [(tag, regexp) for tag, regexp in entries if tag != _BOOL]
        for first, entries in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    booleans = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
    for first in "tTfF":
        resolvers.setdefault(first, []).append((_BOOL, booleans))
    exponent = re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")
    for first in "-+0123456789":
        resolvers.setdefault(first, []).insert(0, (_FLOAT, exponent))
    return resolvers


_StrictLoader.yaml_implicit_resolvers = _yaml_12_resolvers()


@dataclass(frozen=True)
class _Shape:
    depth: int
    aliases: int


def _shape(text: str) -> _Shape:
    """Nesting depth and alias count, from the event stream (which does not recurse)."""
    depth = deepest = aliases = 0
    for event in yaml.parse(text, Loader=_StrictLoader):
        if isinstance(event, CollectionStartEvent):
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_DEPTH:
                raise RecipeYamlError(
                    f"it nests more than {MAX_DEPTH} levels deep", _line(event.start_mark)
                )
        elif isinstance(event, CollectionEndEvent):
            depth -= 1
        elif isinstance(event, AliasEvent):
            aliases += 1
    return _Shape(deepest, aliases)


def _expanded_size(root: Node) -> int:
    """How many values the document holds once every alias is expanded, counted without
    expanding (each node's size once, however often it is referred to)."""
    sizes: dict[int, int] = {}
    order: list[Node] = []
    stack = [root]
    while stack:  # children before parents, iteratively: nesting is bounded but may be deep
        node = stack.pop()
        if id(node) in sizes:
            continue
        sizes[id(node)] = -1
        order.append(node)
        stack.extend(_children(node))
    for node in reversed(order):
        sizes[id(node)] = 1 + sum(sizes[id(child)] for child in _children(node))
        if sizes[id(node)] > MAX_VALUES:
            raise RecipeYamlError(
                f"its aliases expand to more than {MAX_VALUES:,} values", _line(node.start_mark)
            )
    return sizes[id(root)]


def _line(mark: Any) -> int | None:
    return mark.line + 1 if mark is not None else None


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    assert isinstance(node, ScalarNode)
    return []


def load_yaml(text: str) -> Any:
    """Parse one YAML document the way a recipe means it.

    Raises:
        yaml.YAMLError: not YAML.
        RecipeYamlError: YAML a recipe cannot be: too large, too deep, aliases that expand too
            far, or a key given twice.
    """
    if len(text) > MAX_BYTES:
        raise RecipeYamlError(f"it is {len(text):,} characters long (at most {MAX_BYTES:,})")
    shape = _shape(text)
    loader = _StrictLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None
        if shape.aliases:
            _expanded_size(root)
        return loader.construct_document(root)
    finally:
        loader.dispose()
