"""Checking a rule's ``conditions`` at pack parse time (docs/rules.md for the format)."""

from __future__ import annotations

from typing import Any

from attune.domain.criteria import OPERATORS, SEARCH_CONDITIONS
from attune.packs.yamlfields import type_name

__all__ = ["condition_problem"]


def condition_problem(node: Any, where: str) -> str | None:
    """Why a rule's ``conditions`` cannot be evaluated, or None (see docs/rules.md for the format)."""
    if node is None:
        return None
    if isinstance(node, list):
        for index, item in enumerate(node):
            problem = condition_problem(item, f"{where}[{index}]")
            if problem is not None:
                return problem
        return None
    if not isinstance(node, dict):
        return f"{where} must be a list or a mapping (got {type_name(node)})"
    groups = [key for key in ("all", "any", "not") if key in node]
    if groups:
        if len(node) != 1:
            return f"{where} mixes '{groups[0]}' with other keys"
        return condition_problem(node[groups[0]], f"{where}.{groups[0]}")
    if "expression" in node:
        return None if isinstance(node["expression"], str) else f"{where}.expression must be a string"
    if not isinstance(node.get("field"), str) or not node["field"]:
        return f"{where}.field is required"
    operator = node.get("operator")
    known = {*OPERATORS, "exists", "nexists", "search"}  # handled apart from the value tests
    if not isinstance(operator, str) or operator.lower() not in known:
        return f"{where}.operator must be one of {', '.join(sorted(known))} (got {operator!r})"
    if operator.lower() == "search":
        return _search_problem(node.get("value"), f"{where}.value")
    return None


def _search_problem(spec: Any, where: str) -> str | None:
    """What is wrong with a ``search`` condition's ``{condition, conditions}`` value (docs/rules.md)."""
    if not isinstance(spec, dict):
        return f"{where} must be a mapping with 'condition' and 'conditions'"
    if str(spec.get("condition") or "").lower() not in SEARCH_CONDITIONS:
        allowed = ", ".join(SEARCH_CONDITIONS)
        return f"{where}.condition must be one of {allowed} (got {spec.get('condition')!r})"
    children = spec.get("conditions")
    if not isinstance(children, list) or not children:
        return f"{where}.conditions must be a non-empty list of conditions"
    return condition_problem(children, f"{where}.conditions")
