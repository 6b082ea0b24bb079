"""The task-map form of Attune's later workflow files → a native document (docs/workflows.md).

``tasks`` is a map of name → task with ``on-success`` / ``on-error`` / ``on-complete`` lists of task
names; ``input`` is a list of names (or ``name: default``); ``vars`` and ``publish`` are lists of
single-key maps (or maps); ``output`` is a map of name → expression rendered on success. ``ref`` and
``label`` come from the action or the file name. It runs with Attune's own rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from attune.workflow.dialects.convert import (
    Problems,
    header,
    input_parameters,
    literal,
    name_list,
    ordered_pairs,
)
from attune.workflow.model import WorkflowValidationError

__all__ = ["to_native"]

_LINKS = (("on-success", "{{ succeeded() }}"), ("on-error", "{{ failed() }}"), ("on-complete", None))
_COPIED = ("action", "with_items", "concurrency", "batch_size", "join", "timeout", "delay", "when", "retry")


def to_native(
    doc: Mapping[str, Any], *, ref: str | None, parameters: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Rewrite a task-map workflow; raises WorkflowValidationError listing every problem."""
    problems = Problems()
    version = doc.get("version")
    native = header(doc, ref, "attune", "1.0.0" if version is None else str(version))
    schema = input_parameters(
        doc.get("input"), parameters or _mapping(doc.get("parameters")), "input", problems
    )
    if schema is not None:
        native["parameters"] = schema
    native["vars"] = {name: value for name, value in ordered_pairs(doc.get("vars"), "vars", problems)}
    output = doc.get("output")
    if (
        isinstance(output, Mapping)
        and all(isinstance(value, Mapping) for value in output.values())
        and output
    ):
        native["output"] = dict(output)  # a flat output schema, not expressions
    elif output is not None:
        pairs = ordered_pairs(output, "output", problems)
        native["output_map"] = {name: literal(value) for name, value in pairs}
    tasks = doc.get("tasks")
    if not isinstance(tasks, Mapping) or not tasks:
        problems.add("", "tasks must be a non-empty map of task name to task")
        tasks = {}
    native["tasks"] = [_task(str(name), task, problems) for name, task in tasks.items()]
    if problems.items:
        raise WorkflowValidationError(problems.items)
    return native


def _mapping(value: Any) -> Mapping[str, Any] | None:
    return value if isinstance(value, Mapping) else None


def _task(name: str, task: Any, problems: Problems) -> dict[str, Any]:
    where = f"tasks.{name}"
    native: dict[str, Any] = {"name": name}
    if not isinstance(task, Mapping):
        problems.add(where, "a task must be a mapping")
        return native
    native.update({key: task[key] for key in _COPIED if task.get(key) is not None})
    if task.get("input") is not None:
        native["input"] = task["input"]
    publish = [
        {key: literal(value)}
        for key, value in ordered_pairs(task.get("publish"), f"{where}.publish", problems)
    ]
    transitions: list[dict[str, Any]] = []
    for key, when in _LINKS:
        targets = name_list(task.get(key), f"{where}.{key}", problems)
        if not targets:
            continue
        transition: dict[str, Any] = {"do": targets}
        if when is not None:
            transition["when"] = when
        transitions.append(transition)
    if publish:
        success = next((t for t in transitions if t.get("when") == "{{ succeeded() }}"), None)
        if success is None:
            success = {"when": "{{ succeeded() }}"}
            transitions.insert(0, success)
        success["publish"] = publish
    if task.get("next") is not None:
        transitions.extend(task["next"] if isinstance(task["next"], list) else [])
    if transitions:
        native["next"] = transitions
    return native
