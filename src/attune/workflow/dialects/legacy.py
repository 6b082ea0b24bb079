"""Attune's legacy transition fields folded into ``next`` (docs/workflows.md "Legacy forms").

``on_success``/``on_failure``/``on_complete``/``on_timeout``, ``decision`` branches and a task-level
``publish`` become ordered transitions, so stored definitions only ever contain ``next``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from attune.workflow.dialects.checks import Errors, parse_publish
from attune.workflow.model import TransitionSpec

__all__ = ["legacy_transitions"]

_LEGACY_ORDER = (
    ("on_success", "{{ succeeded() }}"),
    ("on_failure", "{{ failed() }}"),
    ("on_complete", None),
    ("on_timeout", "{{ timed_out() }}"),
)
_PURE = re.compile(r"^\s*\{\{(?P<inner>(?:(?!\{\{).)+?)\}\}\s*$", re.DOTALL)


def legacy_transitions(
    entry: Mapping[str, Any], where: str, siblings: set[str], errors: Errors
) -> list[TransitionSpec]:
    """Fold ``on_*``, ``decision`` and task-level ``publish`` into ordered transitions."""
    generated: list[tuple[str | None, str]] = []
    for key, when in _LEGACY_ORDER:
        target = entry.get(key)
        if target is None:
            continue
        if not isinstance(target, str):
            errors.add(where, f"{key} must be a single task name")
            continue
        if target not in siblings:
            errors.add(where, f"{key} references unknown task {target!r}")
        generated.append((when, target))
    generated.extend(_legacy_decisions(entry.get("decision"), where, siblings, errors))
    transitions = [TransitionSpec(when=when, do=[target]) for when, target in generated]
    publish = parse_publish(entry.get("publish"), "publish", where, errors)
    if publish:
        for position, transition in enumerate(transitions):
            if transition.when is not None and "succeeded()" in transition.when.replace(" ", "").lower():
                transitions[position] = replace(transition, publish=publish)
                break
        else:
            if not transitions:
                transitions.append(TransitionSpec(when="{{ succeeded() }}", publish=publish))
            else:
                transitions[0] = replace(transitions[0], publish=publish)
    return transitions


def _legacy_decisions(
    value: Any, where: str, siblings: set[str], errors: Errors
) -> list[tuple[str | None, str]]:
    """Decision branches in order; the default branch fires only when no other branch fired.

    The default's condition is written as the negation of the other branches so the stored
    document stays plain ``next`` (a branch that is not a single ``{{ … }}`` cannot be negated and
    makes the default unconditional, the pre-intended behaviour).
    """
    if value is None:
        return []
    if not isinstance(value, list):
        errors.add(where, "decision must be a list")
        return []
    branches: list[tuple[str | None, str, bool]] = []
    defaults = 0
    for position, branch in enumerate(value):
        field_name = f"decision[{position}]"
        if not isinstance(branch, Mapping):
            errors.add(where, f"{field_name} must be a mapping")
            continue
        target = branch.get("next")
        is_default = branch.get("default") is True
        when = branch.get("when")
        if not isinstance(target, str):
            errors.add(where, f"{field_name}.next must be a single task name")
            continue
        if target not in siblings:
            errors.add(where, f"{field_name}.next references unknown task {target!r}")
        if is_default:
            defaults += 1
        elif not isinstance(when, str):
            errors.add(where, f"{field_name}.when is required for a non-default branch")
            continue
        branches.append((when if isinstance(when, str) and not is_default else None, target, is_default))
    if defaults > 1:
        errors.add(where, "decision has more than one default branch")
    others = [when for when, _, is_default in branches if not is_default and when is not None]
    inners = [_pure_inner(when) for when in others]
    default_when: str | None = None
    if others and all(inner is not None for inner in inners):
        default_when = "{{ " + " and ".join(f"not ({inner})" for inner in inners) + " }}"
    return [(default_when if is_default else when, target) for when, target, is_default in branches]


def _pure_inner(template: str) -> str | None:
    match = _PURE.match(template)
    return match.group("inner").strip() if match else None
