"""StackStorm's Orquesta dialect → a native document with ``dialect: orquesta`` (docs/stackstorm.md).

Top level: ``version``, ``description``, ``input`` (names or ``name: default``), ``vars`` and
``output`` (lists of single-key maps, rendered in order), ``tasks`` (a map). Task: ``action``
(optionally with inline parameters), ``input``, ``next`` (``when``/``publish``/``do``; ``do`` a name,
a list or a comma-separated string, engine commands included), ``join``, ``with`` (``items``,
optionally ``x, y in <% … %>``, and ``concurrency``), ``retry`` (``when``, ``count``, ``delay``),
``delay``. The Orquesta run-time rules (templated vars, name-ordered dispatch, handled failures,
``errors``, output on failure) are the conductor's, selected by the dialect.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from attune.workflow.dialects.convert import (
    Problems,
    header,
    inline_params,
    input_parameters,
    literal,
    name_list,
    ordered_pairs,
)
from attune.workflow.model import WorkflowValidationError

__all__ = ["to_native"]

_ITEMS = re.compile(r"^\s*(?P<names>\w+(?:\s*,\s*\w+)*)\s+in\s+(?P<expr>.+?)\s*$", re.DOTALL)
_TASK_KEYS = frozenset({"action", "input", "next", "join", "with", "retry", "delay"})


def to_native(
    doc: Mapping[str, Any], *, ref: str | None, parameters: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Rewrite an Orquesta workflow; raises WorkflowValidationError listing every problem."""
    problems = Problems()
    version = doc.get("version")
    native = header(doc, ref, "orquesta", "1.0" if version is None else str(version))
    schema = input_parameters(doc.get("input"), parameters, "input", problems)
    if schema is not None:
        native["parameters"] = schema
    native["vars"] = [{name: value} for name, value in ordered_pairs(doc.get("vars"), "vars", problems)]
    outputs = ordered_pairs(doc.get("output"), "output", problems)
    if outputs:
        native["output_map"] = [{name: literal(value)} for name, value in outputs]
    tasks = doc.get("tasks")
    if not isinstance(tasks, Mapping) or not tasks:
        problems.add("", "tasks must be a non-empty map of task name to task")
        tasks = {}
    native["tasks"] = [_task(str(name), task, problems) for name, task in tasks.items()]
    if problems.items:
        raise WorkflowValidationError(problems.items)
    return native


def _task(name: str, task: Any, problems: Problems) -> dict[str, Any]:
    where = f"tasks.{name}"
    native: dict[str, Any] = {"name": name, "type": "action"}
    if task is None:
        task = {}
    if not isinstance(task, Mapping):
        problems.add(where, "a task must be a mapping")
        return native
    unknown = sorted(set(task) - _TASK_KEYS)
    if unknown:
        problems.add(where, f"unknown task field(s): {', '.join(unknown)}")
    action = task.get("action")
    task_input: dict[str, Any] = {}
    if isinstance(action, str) and action.strip():
        head, _, rest = action.strip().partition(" ")
        native["action"] = head
        task_input.update(inline_params(rest))
    elif action is not None:
        problems.add(where, "action must be a string")
    raw_input = task.get("input")
    if isinstance(raw_input, Mapping):
        task_input.update({str(key): value for key, value in raw_input.items()})
    elif isinstance(raw_input, str):
        task_input.update(inline_params(raw_input))
    elif raw_input is not None:
        problems.add(where, "input must be a mapping")
    if task_input:
        native["input"] = task_input
    join = task.get("join")
    if join is not None:
        native["join"] = join
    delay = _seconds(task.get("delay"), f"{where}.delay", problems)
    if delay is not None:
        native["delay"] = delay
    _items(task.get("with"), native, where, problems)
    retry = _retry(task.get("retry"), f"{where}.retry", problems)
    if retry is not None:
        native["retry"] = retry
    transitions = task.get("next")
    if transitions is not None:
        if not isinstance(transitions, list):
            problems.add(where, "next must be a list")
        else:
            native["next"] = [
                _transition(entry, f"{where}.next[{i}]", problems) for i, entry in enumerate(transitions)
            ]
    return native


def _transition(entry: Any, where: str, problems: Problems) -> dict[str, Any]:
    if not isinstance(entry, Mapping):
        problems.add(where, "must be a mapping")
        return {}
    native: dict[str, Any] = {}
    when = entry.get("when")
    if when is not None:
        native["when"] = when if isinstance(when, str) else literal(when)
    publish = ordered_pairs(entry.get("publish"), f"{where}.publish", problems)
    if publish:
        native["publish"] = [{name: literal(value)} for name, value in publish]
    targets = name_list(entry.get("do"), f"{where}.do", problems)
    # Orquesta: a transition without ``do`` continues (publishes only).
    native["do"] = [target for target in targets if target != "continue"]
    if not native["do"]:
        del native["do"]
    return native


def _items(value: Any, native: dict[str, Any], where: str, problems: Problems) -> None:
    if value is None:
        return
    if isinstance(value, str):
        value = {"items": value}
    if not isinstance(value, Mapping) or not isinstance(value.get("items"), str):
        problems.add(f"{where}.with", "must be an items expression or a mapping with items")
        return
    expression = value["items"]
    match = _ITEMS.match(expression)
    if match is not None and not expression.strip().startswith(("<%", "{{")):
        native["item_names"] = [name.strip() for name in match.group("names").split(",")]
        expression = match.group("expr")
    native["with_items"] = expression
    concurrency = _seconds(value.get("concurrency"), f"{where}.with.concurrency", problems)
    if concurrency is not None:
        native["concurrency"] = concurrency


def _retry(value: Any, where: str, problems: Problems) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        problems.add(where, "must be a mapping")
        return None
    count = _seconds(value.get("count"), f"{where}.count", problems)
    if count is None:
        problems.add(where, "count is required")
    if not count:
        return None  # Orquesta: count 0 means do not retry
    delay = _seconds(value.get("delay"), f"{where}.delay", problems) or 0
    native: dict[str, Any] = {"count": count, "delay": delay}
    when = value.get("when")
    if when is not None:
        native["when"] = when if isinstance(when, str) else literal(when)
    return native


def _seconds(value: Any, where: str, problems: Problems) -> int | None:
    """An integer field (delay, count, concurrency); Orquesta's expression form is not supported."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    problems.add(where, "must be an integer (expressions are not supported here)")
    return None
