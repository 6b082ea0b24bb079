"""Helpers shared by the dialect front ends that rewrite documents into the native form."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from attune.domain import refs

__all__ = [
    "Problems",
    "header",
    "inline_params",
    "input_parameters",
    "literal",
    "name_list",
    "ordered_pairs",
]

_INLINE = re.compile(
    r"""(\w+)=(\[.*?\]|"[^"]*"|'[^']*'|<%.*?%>|\{\{.*?\}\}|[-]?\d*\.\d+|[-]?\d+|(?i:true|false)|null|\S+)"""
)


class Problems:
    """Problems found while rewriting a dialect document, each naming where it is."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.items.append(f"{where}: {message}" if where else message)


def literal(value: Any) -> Any:
    """``value`` as a native template string: strings stay; other JSON values become a template
    that evaluates to exactly that value (native publishes and outputs must be strings)."""
    if isinstance(value, str):
        return value
    return "{{ from_json(" + json.dumps(json.dumps(value)) + ") }}"


def header(doc: Mapping[str, Any], ref: str | None, dialect: str, version: str) -> dict[str, Any]:
    """``ref``, ``label``, ``version``, ``description``, ``dialect`` of the native document."""
    native: dict[str, Any] = {"version": version, "dialect": dialect}
    raw_ref = doc.get("ref")
    if isinstance(raw_ref, str):
        native["ref"] = raw_ref
    elif ref is not None:
        native["ref"] = ref
    chosen = native.get("ref")
    label = doc.get("label") or doc.get("name")
    if isinstance(label, str) and label:
        native["label"] = label[:255]
    elif isinstance(chosen, str):
        native["label"] = refs.label_from_name(refs.name_of(chosen))
    description = doc.get("description")
    if isinstance(description, str):
        native["description"] = description
    return native


def ordered_pairs(value: Any, where: str, problems: Problems) -> list[tuple[str, Any]]:
    """A map, or a list of single-key maps (Orquesta's ``vars``/``output``/``publish``), as pairs."""
    if value is None:
        return []
    if isinstance(value, Mapping):
        return [(str(key), item) for key, item in value.items()]
    if isinstance(value, list):
        pairs: list[tuple[str, Any]] = []
        for position, entry in enumerate(value):
            if isinstance(entry, Mapping) and entry:
                pairs.extend((str(key), item) for key, item in entry.items())
            else:
                problems.add(where, f"[{position}] must be a single-key mapping")
        return pairs
    if isinstance(value, str):
        return inline_params(value)
    problems.add(where, "must be a list of single-key mappings")
    return []


def inline_params(text: str) -> list[tuple[str, Any]]:
    """``a=1 b="two words" c=<% ctx().x %>`` → ordered pairs (Orquesta's inline parameters)."""
    pairs: list[tuple[str, Any]] = []
    for key, raw in _INLINE.findall(text):
        value = raw.strip()
        quoted = len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'"
        if quoted:
            pairs.append((key, value[1:-1]))
            continue
        try:
            pairs.append((key, json.loads(value.lower() if value.lower() in ("true", "false") else value)))
        except ValueError:
            pairs.append((key, value))
    return pairs


def name_list(value: Any, where: str, problems: Problems) -> list[str]:
    """``do``-style targets: a name, a comma-separated string, or a list of names."""
    if value is None:
        return []
    if isinstance(value, str):
        return [name.strip() for name in value.split(",") if name.strip()]
    if isinstance(value, list) and all(isinstance(name, str) for name in value):
        return [name.strip() for name in value]
    problems.add(where, "must be a task name, a comma-separated string or a list of names")
    return []


def input_parameters(
    declared: Any, metadata: Mapping[str, Any] | None, where: str, problems: Problems
) -> dict[str, Any] | None:
    """The workflow's parameter schema: the action metadata's, completed by the ``input`` list.

    ``input`` entries are names or ``name: default``; a default the metadata lacks is added.
    """
    schema: dict[str, Any] = {
        key: dict(value) for key, value in (metadata or {}).items() if isinstance(value, Mapping)
    }
    if declared is None:
        return schema or None
    if not isinstance(declared, list):
        problems.add(where, "must be a list of names or single-key mappings")
        return schema or None
    for position, entry in enumerate(declared):
        if isinstance(entry, str):
            schema.setdefault(entry, {})
        elif isinstance(entry, Mapping) and len(entry) == 1:
            name, default = next(iter(entry.items()))
            definition = schema.setdefault(str(name), {})
            definition.setdefault("default", default)
        else:
            problems.add(where, f"[{position}] must be a name or a single-key mapping")
    return schema
