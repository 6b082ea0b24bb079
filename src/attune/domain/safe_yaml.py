"""The one YAML loader for documents users send: safe tags, and bounded depth, size and aliases.

docs/security.md "Input limits": a few hundred bytes of YAML can expand into billions of nodes
through anchors and aliases ("billion laughs"), and deep nesting exhausts the parser's recursion.
This loader composes the node graph first (aliases stay references, so composing is linear in the
text), refuses a document nested deeper than ``max_depth`` or whose fully expanded form has more
than ``max_nodes`` nodes, and only then builds Python objects. Every refusal is a
:class:`YamlLimitError` (a ``yaml.YAMLError``, so callers that report YAML errors report it too).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

__all__ = ["SafeLoader", "YamlLimitError", "YamlLimits", "configure", "limits", "load"]


@dataclass(frozen=True)
class YamlLimits:
    """Settings ``limits.yaml_*`` (docs/configuration.md)."""

    #: Deepest nesting of mappings and lists.
    max_depth: int = 100
    #: Most nodes of the document with every alias expanded.
    max_nodes: int = 200_000
    #: Most aliases (``*name``) in one document.
    max_aliases: int = 1_000


class YamlLimitError(yaml.YAMLError):
    """A YAML document over one of the :class:`YamlLimits`."""


_limits = YamlLimits()


def configure(new: YamlLimits) -> None:
    """Install the process-wide limits (the server calls it with its settings at start)."""
    global _limits
    _limits = new


def limits() -> YamlLimits:
    """The process-wide limits."""
    return _limits


class SafeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` with the limits; subclass it to add constructors."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._limits = _limits
        self._depth = 0
        self._aliases = 0

    def fetch_flow_collection_start(self, token_class: Any) -> None:
        # The scanner's work per token grows with the flow nesting level, so stop at the limit
        # here already: "[" * 100000 would otherwise take minutes before the composer sees it.
        if self.flow_level >= self._limits.max_depth:
            mark = self.get_mark()
            raise YamlLimitError(
                f"nested deeper than {self._limits.max_depth} levels at line {mark.line + 1}"
            )
        super().fetch_flow_collection_start(token_class)

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > self._limits.max_aliases:
                raise YamlLimitError(f"more than {self._limits.max_aliases} aliases")
            return super().compose_node(parent, index)  # type: ignore[no-any-return]
        self._depth += 1
        try:
            if self._depth > self._limits.max_depth:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise YamlLimitError(
                    f"nested deeper than {self._limits.max_depth} levels at line {mark.line + 1}"
                )
            return super().compose_node(parent, index)  # type: ignore[no-any-return]
        finally:
            self._depth -= 1

    def get_single_node(self) -> yaml.Node | None:
        node: yaml.Node | None = super().get_single_node()
        if node is not None:
            _check_expanded_size(node, self._limits.max_nodes)
        return node


def _check_expanded_size(root: yaml.Node, limit: int) -> None:
    """Refuse a node graph whose alias-expanded size passes ``limit``, without expanding it."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    # Iterative post-order walk; a node reached through several aliases is counted once per
    # reference (that is what construction would build) but visited once.
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if not children_done:
            if key in sizes:
                continue
            if key in open_nodes:
                raise YamlLimitError("an alias refers to a node that contains it (recursive document)")
        children = _children(node)
        if not children_done and children:
            open_nodes.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in sizes)
            continue
        open_nodes.discard(key)
        total = 1 + sum(sizes.get(id(child), 1) for child in children)
        if total > limit:
            raise YamlLimitError(f"more than {limit} nodes once aliases are expanded")
        sizes[key] = total


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def load(text: str | bytes, loader: type[SafeLoader] = SafeLoader) -> Any:
    """Parse one YAML document with the limits (raises ``yaml.YAMLError``)."""
    try:
        return yaml.load(text, Loader=loader)
    except RecursionError as exc:  # belt and braces: the depth limit should come first
        raise YamlLimitError("nested too deeply") from exc
