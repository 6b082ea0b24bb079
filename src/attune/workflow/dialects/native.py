"""Attune's native workflow format → ``WorkflowSpec`` (docs/workflows.md).

The stored form of every dialect is a native document (``to_document``), so this parser is also
the one place that checks a definition loaded back from the database. It rejects everything the
format says MUST be rejected and reports all problems at once; legacy fields are folded into
``next`` by ``legacy``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from attune.workflow.dialects.checks import (
    Errors,
    is_int,
    is_number,
    optional_mapping,
    parse_publish,
    positive_int,
    task_template,
    text,
)
from attune.workflow.dialects.checks import (
    chart_meta as read_chart_meta,
)
from attune.workflow.dialects.legacy import legacy_transitions
from attune.workflow.model import (
    BACKOFFS,
    DIALECTS,
    ENGINE_COMMANDS,
    TASK_TYPES,
    RetrySpec,
    TaskSpec,
    TransitionSpec,
    WorkflowSpec,
    WorkflowValidationError,
    walk,
)

__all__ = ["parse_native"]


def parse_native(doc: Mapping[str, Any], *, ref: str | None = None) -> WorkflowSpec:
    """Parse and normalise a native workflow document (validation and legacy forms: docs/workflows.md).

    ``ref``, when given, is the ref derived from the file name: a document without ``ref`` takes it,
    a document with a different ``ref`` is rejected. Raises WorkflowValidationError listing every
    problem found.
    """
    errors = Errors()
    if not isinstance(doc, Mapping):
        raise WorkflowValidationError(["the workflow document must be a mapping"])
    doc_ref = text(doc, "ref", "", errors, limit=255)
    if doc_ref is None and "ref" not in doc:
        if ref is None:
            errors.add("", "ref is required")
        doc_ref = ref
    elif ref is not None and doc_ref is not None and doc_ref != ref:
        errors.add("", f"ref {doc_ref!r} does not match the expected ref {ref!r}")
    label = text(doc, "label", "", errors, limit=255)
    if label is None and "label" not in doc:
        errors.add("", "label is required")
    version = text(doc, "version", "", errors, limit=50)
    if "version" in doc and is_number(doc["version"]):
        errors.items.pop()
        errors.add("", 'version must be a string (quote it, e.g. "1.0.0")')
    elif version is None and "version" not in doc:
        errors.add("", "version is required")
    description = text(doc, "description", "", errors, limit=None)
    parameters = optional_mapping(doc, "parameters", "", errors)
    output = optional_mapping(doc, "output", "", errors)
    variables = _parse_vars(doc.get("vars"), errors)
    output_map = _ordered_map(doc.get("output_map"), "output_map", errors)
    if output_map is not None:
        for name, value in output_map.items():
            if not isinstance(value, str):
                errors.add("", f"output_map.{name} must be a template string")
    dialect = doc.get("dialect", "attune")
    if dialect not in DIALECTS:
        errors.add("", f"dialect must be one of {', '.join(DIALECTS)}")
        dialect = "attune"
    tags = doc.get("tags")
    if tags is None:
        tags = []
    elif not (isinstance(tags, list) and all(isinstance(tag, str) for tag in tags)):
        errors.add("", "tags must be a list of strings")
        tags = []
    raw_tasks = doc.get("tasks")
    tasks: list[TaskSpec] = []
    if not isinstance(raw_tasks, list) or not raw_tasks:
        errors.add("", "tasks must be a non-empty list")
    else:
        tasks = _parse_task_list(raw_tasks, "", errors, actionless=dialect != "attune")
        seen: set[str] = set()
        for task in walk(tasks):
            if task.name in seen:
                errors.add("", f"duplicate task name {task.name!r}")
            seen.add(task.name)
    if errors.items:
        raise WorkflowValidationError(errors.items)
    assert doc_ref is not None and label is not None and version is not None
    return WorkflowSpec(
        ref=doc_ref,
        label=label,
        version=version,
        description=description,
        parameters=parameters,
        output=output,
        vars=variables,
        tasks=tasks,
        output_map=output_map,
        tags=list(tags),
        dialect=dialect,
    )


def _ordered_map(value: Any, key: str, errors: Errors) -> dict[str, Any] | None:
    """A mapping, or a list of single-key mappings (order kept where JSON storage would lose it)."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        return {str(name): item for name, item in value.items()}
    if isinstance(value, list) and all(isinstance(entry, Mapping) for entry in value):
        return {str(name): item for entry in value for name, item in entry.items()}
    errors.add("", f"{key} must be a mapping (or a list of single-key mappings)")
    return None


def _parse_vars(value: Any, errors: Errors) -> dict[str, Any]:
    """``vars`` as a mapping, or the Orquesta list of single-key mappings merged in order."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return {str(key): item for key, item in value.items()}
    if isinstance(value, list):
        merged: dict[str, Any] = {}
        for position, entry in enumerate(value):
            if not isinstance(entry, Mapping):
                errors.add("", f"vars[{position}] must be a mapping of name to value")
                continue
            merged.update({str(key): item for key, item in entry.items()})
        return merged
    errors.add("", "vars must be a mapping (or a list of single-key mappings)")
    return {}


def _parse_task_list(
    raw_tasks: list[Any], prefix: str, errors: Errors, *, actionless: bool = False
) -> list[TaskSpec]:
    """The tasks of one scope; ``actionless`` allows Orquesta's tasks without an action (they just route)."""
    names = {
        entry["name"]
        for entry in raw_tasks
        if isinstance(entry, Mapping) and isinstance(entry.get("name"), str)
    }
    tasks: list[TaskSpec] = []
    for position, entry in enumerate(raw_tasks):
        task = _parse_task(entry, position, prefix, names, errors, actionless)
        if task is not None:
            tasks.append(task)
    return tasks


def _parse_task(
    entry: Any, position: int, prefix: str, siblings: set[str], errors: Errors, actionless: bool
) -> TaskSpec | None:
    where = f"{prefix}tasks[{position}]"
    if not isinstance(entry, Mapping):
        errors.add(where, "a task must be a mapping")
        return None
    name = entry.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= 255:
        errors.add(where, "name must be a string of 1–255 characters")
        return None
    where = f"{where} ({name})"
    count_before = len(errors.items)

    task_type = entry.get("type", "action")
    if task_type is None:
        task_type = "action"
    if task_type not in TASK_TYPES:
        errors.add(where, f"type must be one of {', '.join(TASK_TYPES)}")
        task_type = "action"
    action = entry.get("action")
    if action is not None and not isinstance(action, str):
        errors.add(where, "action must be a string")
        action = None
    if task_type in ("action", "workflow") and not action and not (actionless and task_type == "action"):
        errors.add(where, f"a task of type {task_type!r} needs an action")
    task_input = entry.get("input")
    if task_input is None:
        task_input = {}
    elif not isinstance(task_input, Mapping):
        errors.add(where, "input must be a mapping")
        task_input = {}
    when = task_template(entry, "when", where, errors)
    with_items = entry.get("with_items")
    if with_items is not None and not isinstance(with_items, str):
        errors.add(where, "with_items must be a template string (a literal list is not allowed)")
        with_items = None
    item_names = entry.get("item_names")
    if item_names is not None and not (
        isinstance(item_names, list) and item_names and all(isinstance(n, str) and n for n in item_names)
    ):
        errors.add(where, "item_names must be a non-empty list of names")
        item_names = None
    batch_size = positive_int(entry, "batch_size", where, errors)
    concurrency = positive_int(entry, "concurrency", where, errors)
    join = entry.get("join")
    if join is not None and join != "all" and not (is_int(join) and join > 0):
        errors.add(where, "join must be a positive integer or 'all'")
        join = None
    retry = _parse_retry(entry.get("retry"), where, errors)
    timeout = positive_int(entry, "timeout", where, errors)
    delay = entry.get("delay")
    if delay is not None and not (is_int(delay) and delay >= 0):
        errors.add(where, "delay must be an integer number of seconds ≥ 0")
        delay = None
    chart_meta = read_chart_meta(entry, where, errors)

    sub_tasks: list[TaskSpec] = []
    raw_sub = entry.get("tasks")
    if task_type == "parallel":
        if not isinstance(raw_sub, list) or not raw_sub:
            errors.add(where, "a parallel task needs a non-empty tasks list")
        else:
            sub_tasks = _parse_task_list(raw_sub, f"{where}.", errors, actionless=actionless)
    elif raw_sub is not None and not isinstance(raw_sub, list):
        errors.add(where, "tasks must be a list")

    transitions = _parse_transitions(entry, where, siblings, errors)
    if len(errors.items) != count_before:
        return None
    return TaskSpec(
        name=name,
        type=task_type,
        action=action,
        input=dict(task_input),
        next=transitions,
        when=when,
        with_items=with_items,
        item_names=list(item_names) if item_names else None,
        batch_size=batch_size,
        concurrency=concurrency,
        join=join,
        retry=retry,
        timeout=timeout,
        delay=delay,
        tasks=sub_tasks,
        chart_meta=chart_meta,
    )


def _parse_retry(value: Any, where: str, errors: Errors) -> RetrySpec | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        errors.add(where, "retry must be a mapping")
        return None
    value = dict(value)  # values typed Any from here on
    ok = True
    count = value.get("count")
    if not (is_int(count) and 1 <= count <= 100):
        errors.add(where, "retry.count is required and must be an integer 1–100")
        ok = False
    delay = value.get("delay")
    if not (is_number(delay) and delay >= 0):
        errors.add(where, "retry.delay is required and must be a number of seconds ≥ 0")
        ok = False
    backoff = value.get("backoff", "constant") or "constant"
    if backoff not in BACKOFFS:
        errors.add(where, f"retry.backoff must be one of {', '.join(BACKOFFS)}")
        ok = False
    max_delay = value.get("max_delay")
    if max_delay is not None:
        if not is_number(max_delay):
            errors.add(where, "retry.max_delay must be a number of seconds")
            ok = False
        elif is_number(delay) and max_delay < delay:
            errors.add(where, "retry.max_delay must be ≥ retry.delay")
            ok = False
    on_error = value.get("on_error")
    if on_error is not None and not isinstance(on_error, str):
        errors.add(where, "retry.on_error must be a template string")
        ok = False
    when = value.get("when")
    if when is not None and not isinstance(when, str):
        errors.add(where, "retry.when must be a template string")
        ok = False
    if not ok:
        return None
    return RetrySpec(
        count=count, delay=delay, backoff=backoff, max_delay=max_delay, on_error=on_error, when=when
    )


def _parse_transitions(
    entry: Mapping[str, Any], where: str, siblings: set[str], errors: Errors
) -> list[TransitionSpec]:
    raw_next = entry.get("next")
    if raw_next is not None and not isinstance(raw_next, list):
        errors.add(where, "next must be a list")
        return []
    if raw_next:
        result = []
        for position, raw in enumerate(raw_next):
            transition = _parse_transition(raw, f"next[{position}]", where, siblings, errors)
            if transition is not None:
                result.append(transition)
        return result
    return legacy_transitions(entry, where, siblings, errors)


def _parse_transition(
    raw: Any, field_name: str, where: str, siblings: set[str], errors: Errors
) -> TransitionSpec | None:
    if not isinstance(raw, Mapping):
        errors.add(where, f"{field_name} must be a mapping")
        return None
    when = raw.get("when")
    if when is not None and not isinstance(when, str):
        errors.add(where, f"{field_name}.when must be a template string")
    publish = parse_publish(raw.get("publish"), f"{field_name}.publish", where, errors)
    do = raw.get("do")
    if do is None:
        do = []
    elif not (isinstance(do, list) and all(isinstance(target, str) for target in do)):
        errors.add(where, f"{field_name}.do must be a list of task names")
        do = []
    for target in do:
        if target not in siblings and target not in ENGINE_COMMANDS:
            errors.add(where, f"{field_name}.do references unknown task {target!r}")
    chart_meta = read_chart_meta(raw, f"{where}: {field_name}", errors)
    return TransitionSpec(
        when=when if isinstance(when, str) else None,
        publish=publish,
        do=list(dict.fromkeys(do)),
        chart_meta=chart_meta,
    )
