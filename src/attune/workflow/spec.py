"""The workflow language: parse, normalise, validate and serialise workflow documents.

workflows.md §2–§5, §8, §9. ``parse_workflow`` turns a YAML/JSON document into an immutable
``WorkflowSpec`` (legacy ``on_success``/``decision``/task-level ``publish`` folded into ``next``),
rejecting everything §8.1 says MUST be rejected and reporting all problems at once.
``validate_workflow`` adds the §8.2 semantic checks; ``to_document`` gives the normalised document
that is stored as ``workflow_definition.definition`` (``parse(to_document(x)) == x``). Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

from attune.errors import ValidationFailed

__all__ = [
    "BACKOFFS",
    "RESERVED_NAMES",
    "TASK_TYPES",
    "RetrySpec",
    "TaskSpec",
    "TransitionSpec",
    "WorkflowSpec",
    "WorkflowValidationError",
    "parse_workflow",
    "to_document",
    "validate_workflow",
]

TASK_TYPES = ("action", "workflow", "parallel")
BACKOFFS = ("constant", "linear", "exponential")
RESERVED_NAMES = frozenset({"parameters", "vars", "task", "system", "kv", "pack", "item", "batch", "index"})
CHART_META = "__chart_meta__"
RESULT_TEMPLATE = "{{ result() }}"
_VAR_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_LEGACY_ORDER = (
    ("on_success", "{{ succeeded() }}"),
    ("on_failure", "{{ failed() }}"),
    ("on_complete", None),
    ("on_timeout", "{{ timed_out() }}"),
)
_PURE = re.compile(r"^\s*\{\{(?P<inner>(?:(?!\{\{).)+?)\}\}\s*$", re.DOTALL)


class WorkflowValidationError(ValidationFailed):
    """A workflow document is invalid; ``errors`` lists every problem (task and field named)."""

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors = list(errors)
        shown = "; ".join(self.errors[:10])
        more = f" (and {len(self.errors) - 10} more)" if len(self.errors) > 10 else ""
        super().__init__(f"Invalid workflow: {shown}{more}")


@dataclass(frozen=True)
class RetrySpec:
    """Per-task retry policy (§3, §7.6).

    ``on_error`` is an optional condition template evaluated with ``result()`` = the failed
    attempt; the attempt is retried only when it is true. Timeouts are failures and are retried too.
    """

    count: int
    delay: float
    backoff: str = "constant"
    max_delay: float | None = None
    on_error: str | None = None

    def wait(self, retry_number: int) -> float:
        """Seconds to wait before retry ``retry_number`` (0-based)."""
        if self.backoff == "linear":
            seconds = self.delay * (retry_number + 1)
        elif self.backoff == "exponential":
            seconds = self.delay * (2**retry_number)
        else:
            seconds = self.delay
        if self.max_delay is not None and self.backoff != "constant":
            seconds = min(seconds, self.max_delay)
        return float(seconds)


@dataclass(frozen=True)
class TransitionSpec:
    """One ``next`` entry: optional condition, ordered publishes, targets, editor metadata."""

    when: str | None = None
    publish: list[tuple[str, Any]] = field(default_factory=list)
    do: list[str] = field(default_factory=list)
    chart_meta: dict[str, Any] | None = None


@dataclass(frozen=True)
class TaskSpec:
    """One task of the graph. ``tasks`` holds the sub-tasks of a ``parallel`` task."""

    name: str
    type: str = "action"
    action: str | None = None
    input: dict[str, Any] = field(default_factory=dict)
    next: list[TransitionSpec] = field(default_factory=list)
    when: str | None = None
    with_items: str | None = None
    batch_size: int | None = None
    concurrency: int | None = None
    join: int | str | None = None
    retry: RetrySpec | None = None
    timeout: int | None = None
    delay: int | None = None
    tasks: list[TaskSpec] = field(default_factory=list)
    chart_meta: dict[str, Any] | None = None


@dataclass(frozen=True)
class WorkflowSpec:
    """A parsed, normalised workflow. Graph look-ups are computed once and cached on the instance."""

    ref: str
    label: str
    version: str
    tasks: list[TaskSpec]
    description: str | None = None
    parameters: dict[str, Any] | None = None
    output: dict[str, Any] | None = None
    vars: dict[str, Any] = field(default_factory=dict)
    output_map: dict[str, Any] | None = None
    tags: list[str] = field(default_factory=list)

    @cached_property
    def by_name(self) -> dict[str, TaskSpec]:
        """Every task, sub-tasks of parallel tasks included, by name."""
        found: dict[str, TaskSpec] = {}
        for task in _walk(self.tasks):
            found.setdefault(task.name, task)
        return found

    @cached_property
    def parent_of(self) -> dict[str, str | None]:
        """Name of the enclosing parallel task of each task (None at top level)."""
        parents: dict[str, str | None] = {}

        def visit(tasks: list[TaskSpec], parent: str | None) -> None:
            for task in tasks:
                parents.setdefault(task.name, parent)
                visit(task.tasks, task.name)

        visit(self.tasks, None)
        return parents

    @cached_property
    def inbound(self) -> dict[str, list[str]]:
        """Task name → names of the sibling tasks that list it in any ``do`` (in task order)."""
        result: dict[str, list[str]] = {task.name: [] for task in _walk(self.tasks)}
        for task in _walk(self.tasks):
            for transition in task.next:
                for target in transition.do:
                    sources = result.setdefault(target, [])
                    if task.name not in sources:
                        sources.append(task.name)
        return result

    def entry_points(self, scope: str | None = None) -> list[str]:
        """Tasks with no inbound edge, in document order, at top level or inside parallel ``scope``."""
        tasks = self.tasks if scope is None else self.by_name[scope].tasks
        return [task.name for task in tasks if not self.inbound.get(task.name)]

    def scope_tasks(self, scope: str | None) -> list[TaskSpec]:
        """The tasks of one scope: top level (None) or the sub-tasks of a parallel task."""
        return self.tasks if scope is None else self.by_name[scope].tasks


def _walk(tasks: Iterable[TaskSpec]) -> Iterable[TaskSpec]:
    for task in tasks:
        yield task
        yield from _walk(task.tasks)


# -- parsing ---------------------------------------------------------------------------------------


class _Errors:
    """Collects problems with a location prefix so every message names its task and field."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.items.append(f"{where}: {message}" if where else message)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _text(doc: Mapping[str, Any], key: str, where: str, errors: _Errors, *, limit: int | None) -> str | None:
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        errors.add(where, f"{key} must be a string")
        return None
    if limit is not None and not 1 <= len(value) <= limit:
        errors.add(where, f"{key} must be 1–{limit} characters")
        return None
    return value


def parse_workflow(doc: Mapping[str, Any], *, ref: str | None = None) -> WorkflowSpec:
    """Parse and normalise a workflow document (§8.1 rules, §5 legacy forms).

    ``ref``, when given, is the ref derived from the file name: a document without ``ref`` takes it,
    a document with a different ``ref`` is rejected. Raises WorkflowValidationError listing every
    problem found.
    """
    errors = _Errors()
    if not isinstance(doc, Mapping):
        raise WorkflowValidationError(["the workflow document must be a mapping"])
    doc_ref = _text(doc, "ref", "", errors, limit=255)
    if doc_ref is None and "ref" not in doc:
        if ref is None:
            errors.add("", "ref is required")
        doc_ref = ref
    elif ref is not None and doc_ref is not None and doc_ref != ref:
        errors.add("", f"ref {doc_ref!r} does not match the expected ref {ref!r}")
    label = _text(doc, "label", "", errors, limit=255)
    if label is None and "label" not in doc:
        errors.add("", "label is required")
    version = _text(doc, "version", "", errors, limit=50)
    if "version" in doc and _is_number(doc["version"]):
        errors.items.pop()
        errors.add("", 'version must be a string (quote it, e.g. "1.0.0")')
    elif version is None and "version" not in doc:
        errors.add("", "version is required")
    description = _text(doc, "description", "", errors, limit=None)
    parameters = _optional_mapping(doc, "parameters", "", errors)
    output = _optional_mapping(doc, "output", "", errors)
    variables = _parse_vars(doc.get("vars"), errors)
    output_map = _optional_mapping(doc, "output_map", "", errors)
    if output_map is not None:
        for name, value in output_map.items():
            if not isinstance(value, str):
                errors.add("", f"output_map.{name} must be a template string")
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
        tasks = _parse_task_list(raw_tasks, "", errors)
        seen: set[str] = set()
        for task in _walk(tasks):
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
    )


def _optional_mapping(doc: Mapping[str, Any], key: str, where: str, errors: _Errors) -> dict[str, Any] | None:
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        errors.add(where, f"{key} must be a mapping")
        return None
    return dict(value)


def _parse_vars(value: Any, errors: _Errors) -> dict[str, Any]:
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


def _parse_task_list(raw_tasks: list[Any], prefix: str, errors: _Errors) -> list[TaskSpec]:
    names = {
        entry["name"]
        for entry in raw_tasks
        if isinstance(entry, Mapping) and isinstance(entry.get("name"), str)
    }
    tasks: list[TaskSpec] = []
    for position, entry in enumerate(raw_tasks):
        task = _parse_task(entry, position, prefix, names, errors)
        if task is not None:
            tasks.append(task)
    return tasks


def _parse_task(
    entry: Any, position: int, prefix: str, siblings: set[str], errors: _Errors
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
    if task_type in ("action", "workflow") and not action:
        errors.add(where, f"a task of type {task_type!r} needs an action")
    task_input = entry.get("input")
    if task_input is None:
        task_input = {}
    elif not isinstance(task_input, Mapping):
        errors.add(where, "input must be a mapping")
        task_input = {}
    when = _task_template(entry, "when", where, errors)
    with_items = entry.get("with_items")
    if with_items is not None and not isinstance(with_items, str):
        errors.add(where, "with_items must be a template string (a literal list is not allowed)")
        with_items = None
    batch_size = _positive_int(entry, "batch_size", where, errors)
    concurrency = _positive_int(entry, "concurrency", where, errors)
    join = entry.get("join")
    if join is not None and join != "all" and not (_is_int(join) and join > 0):
        errors.add(where, "join must be a positive integer or 'all'")
        join = None
    retry = _parse_retry(entry.get("retry"), where, errors)
    timeout = _positive_int(entry, "timeout", where, errors)
    delay = entry.get("delay")
    if delay is not None and not (_is_int(delay) and delay >= 0):
        errors.add(where, "delay must be an integer number of seconds ≥ 0")
        delay = None
    chart_meta = _chart_meta(entry, where, errors)

    sub_tasks: list[TaskSpec] = []
    raw_sub = entry.get("tasks")
    if task_type == "parallel":
        if not isinstance(raw_sub, list) or not raw_sub:
            errors.add(where, "a parallel task needs a non-empty tasks list")
        else:
            sub_tasks = _parse_task_list(raw_sub, f"{where}.", errors)
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
        batch_size=batch_size,
        concurrency=concurrency,
        join=join,
        retry=retry,
        timeout=timeout,
        delay=delay,
        tasks=sub_tasks,
        chart_meta=chart_meta,
    )


def _task_template(entry: Mapping[str, Any], key: str, where: str, errors: _Errors) -> str | None:
    value = entry.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        errors.add(where, f"{key} must be a template string")
        return None
    return value


def _positive_int(entry: Mapping[str, Any], key: str, where: str, errors: _Errors) -> int | None:
    value = entry.get(key)
    if value is None:
        return None
    if not (_is_int(value) and value > 0):
        errors.add(where, f"{key} must be a positive integer")
        return None
    return int(value)


def _chart_meta(entry: Mapping[str, Any], where: str, errors: _Errors) -> dict[str, Any] | None:
    value = entry.get(CHART_META)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        errors.add(where, f"{CHART_META} must be a mapping")
        return None
    return dict(value)


def _parse_retry(value: Any, where: str, errors: _Errors) -> RetrySpec | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        errors.add(where, "retry must be a mapping")
        return None
    value = dict(value)  # values typed Any from here on
    ok = True
    count = value.get("count")
    if not (_is_int(count) and 1 <= count <= 100):
        errors.add(where, "retry.count is required and must be an integer 1–100")
        ok = False
    delay = value.get("delay")
    if not (_is_number(delay) and delay >= 0):
        errors.add(where, "retry.delay is required and must be a number of seconds ≥ 0")
        ok = False
    backoff = value.get("backoff", "constant") or "constant"
    if backoff not in BACKOFFS:
        errors.add(where, f"retry.backoff must be one of {', '.join(BACKOFFS)}")
        ok = False
    max_delay = value.get("max_delay")
    if max_delay is not None:
        if not _is_number(max_delay):
            errors.add(where, "retry.max_delay must be a number of seconds")
            ok = False
        elif _is_number(delay) and max_delay < delay:
            errors.add(where, "retry.max_delay must be ≥ retry.delay")
            ok = False
    on_error = value.get("on_error")
    if on_error is not None and not isinstance(on_error, str):
        errors.add(where, "retry.on_error must be a template string")
        ok = False
    if not ok:
        return None
    return RetrySpec(count=count, delay=delay, backoff=backoff, max_delay=max_delay, on_error=on_error)


def _parse_transitions(
    entry: Mapping[str, Any], where: str, siblings: set[str], errors: _Errors
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
    return _legacy_transitions(entry, where, siblings, errors)


def _parse_transition(
    raw: Any, field_name: str, where: str, siblings: set[str], errors: _Errors
) -> TransitionSpec | None:
    if not isinstance(raw, Mapping):
        errors.add(where, f"{field_name} must be a mapping")
        return None
    when = raw.get("when")
    if when is not None and not isinstance(when, str):
        errors.add(where, f"{field_name}.when must be a template string")
    publish = _parse_publish(raw.get("publish"), f"{field_name}.publish", where, errors)
    do = raw.get("do")
    if do is None:
        do = []
    elif not (isinstance(do, list) and all(isinstance(target, str) for target in do)):
        errors.add(where, f"{field_name}.do must be a list of task names")
        do = []
    for target in do:
        if target not in siblings:
            errors.add(where, f"{field_name}.do references unknown task {target!r}")
    chart_meta = _chart_meta(raw, f"{where}: {field_name}", errors)
    return TransitionSpec(
        when=when if isinstance(when, str) else None,
        publish=publish,
        do=list(dict.fromkeys(do)),
        chart_meta=chart_meta,
    )


def _parse_publish(value: Any, field_name: str, where: str, errors: _Errors) -> list[tuple[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        errors.add(where, f"{field_name} must be a list")
        return []
    entries: list[tuple[str, Any]] = []
    for position, item in enumerate(value):
        if isinstance(item, str):
            entries.append((item, RESULT_TEMPLATE))
        elif isinstance(item, Mapping) and item:
            for name, template in item.items():
                if not isinstance(template, str):
                    errors.add(where, f"{field_name}[{position}].{name} must be a string (quote literals)")
                    continue
                entries.append((str(name), template))
        else:
            errors.add(where, f"{field_name}[{position}] must be a variable name or a mapping")
    return entries


def _legacy_transitions(
    entry: Mapping[str, Any], where: str, siblings: set[str], errors: _Errors
) -> list[TransitionSpec]:
    """§5: fold ``on_*``, ``decision`` and task-level ``publish`` into ordered transitions."""
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
    publish = _parse_publish(entry.get("publish"), "publish", where, errors)
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
    value: Any, where: str, siblings: set[str], errors: _Errors
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


# -- serialisation ---------------------------------------------------------------------------------


def to_document(spec: WorkflowSpec) -> dict[str, Any]:
    """The normalised document (only ``next`` transitions; ``__chart_meta__`` kept, never null)."""
    doc: dict[str, Any] = {"ref": spec.ref, "label": spec.label, "version": spec.version}
    if spec.description is not None:
        doc["description"] = spec.description
    if spec.parameters is not None:
        doc["parameters"] = spec.parameters
    if spec.output is not None:
        doc["output"] = spec.output
    doc["vars"] = dict(spec.vars)
    doc["tasks"] = [_task_document(task) for task in spec.tasks]
    if spec.output_map is not None:
        doc["output_map"] = dict(spec.output_map)
    doc["tags"] = list(spec.tags)
    return doc


def _task_document(task: TaskSpec) -> dict[str, Any]:
    doc: dict[str, Any] = {"name": task.name, "type": task.type}
    if task.action is not None:
        doc["action"] = task.action
    if task.input:
        doc["input"] = task.input
    optional = {
        "when": task.when,
        "with_items": task.with_items,
        "batch_size": task.batch_size,
        "concurrency": task.concurrency,
        "join": task.join,
        "timeout": task.timeout,
        "delay": task.delay,
    }
    doc.update({key: value for key, value in optional.items() if value is not None})
    if task.retry is not None:
        retry: dict[str, Any] = {
            "count": task.retry.count,
            "delay": task.retry.delay,
            "backoff": task.retry.backoff,
        }
        if task.retry.max_delay is not None:
            retry["max_delay"] = task.retry.max_delay
        if task.retry.on_error is not None:
            retry["on_error"] = task.retry.on_error
        doc["retry"] = retry
    if task.tasks:
        doc["tasks"] = [_task_document(sub) for sub in task.tasks]
    if task.next:
        doc["next"] = [_transition_document(transition) for transition in task.next]
    if task.chart_meta is not None:
        doc[CHART_META] = task.chart_meta
    return doc


def _transition_document(transition: TransitionSpec) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    if transition.when is not None:
        doc["when"] = transition.when
    if transition.publish:
        doc["publish"] = [{name: value} for name, value in transition.publish]
    if transition.do:
        doc["do"] = list(transition.do)
    if transition.chart_meta is not None:
        doc[CHART_META] = transition.chart_meta
    return doc


# -- semantic validation ---------------------------------------------------------------------------


def validate_workflow(spec: WorkflowSpec, *, known_actions: Callable[[str], bool] | None = None) -> list[str]:
    """§8.2 semantic problems of a parsed workflow (empty when it is sound).

    ``known_actions``, when given, is asked about every task action ref; refs it rejects are
    reported as unknown actions.
    """
    problems: list[str] = []
    if not spec.ref:
        problems.append("ref must not be empty")
    if not spec.version:
        problems.append("version must not be empty")
    if not spec.tasks:
        problems.append("a workflow needs at least one task")
    for name in spec.vars:
        if not _VAR_NAME.match(name):
            problems.append(f"vars.{name}: variable names use letters, digits, '_' and '-'")
    seen: set[str] = set()
    _validate_tasks(spec.tasks, "", spec, seen, problems, known_actions)
    return problems


def _validate_tasks(
    tasks: list[TaskSpec],
    prefix: str,
    spec: WorkflowSpec,
    seen: set[str],
    problems: list[str],
    known_actions: Callable[[str], bool] | None,
) -> None:
    names = {task.name for task in tasks}
    for position, task in enumerate(tasks):
        where = f"{prefix}tasks[{position}] ({task.name})"
        if task.name in seen:
            problems.append(f"{where}: Duplicate task name {task.name!r}")
        seen.add(task.name)
        if task.name in RESERVED_NAMES:
            problems.append(f"{where}: {task.name!r} is a reserved word")
        if task.type in ("action", "workflow"):
            if not task.action:
                problems.append(f"{where}: a task of type {task.type!r} needs an action")
            elif not _valid_action_ref(task.action):
                problems.append(f"{where}: invalid action ref {task.action!r}")
            elif known_actions is not None and not known_actions(task.action):
                problems.append(f"{where}: unknown action {task.action!r}")
        if task.type == "parallel" and not task.tasks:
            problems.append(f"{where}: a parallel task needs a non-empty tasks list")
        if task.retry is not None:
            if task.retry.count <= 0:
                problems.append(f"{where}: retry.count must be > 0")
            if task.retry.max_delay is not None and task.retry.max_delay < task.retry.delay:
                problems.append(f"{where}: retry.max_delay must be ≥ retry.delay")
        if task.batch_size is not None and task.batch_size <= 0:
            problems.append(f"{where}: batch_size must be > 0")
        if task.concurrency is not None and task.concurrency <= 0:
            problems.append(f"{where}: concurrency must be > 0")
        for index, transition in enumerate(task.next):
            for target in transition.do:
                if target not in names:
                    problems.append(f"{where}: next[{index}].do references unknown task {target!r}")
        if task.tasks:
            _validate_tasks(task.tasks, f"{where}.", spec, seen, problems, known_actions)
    problems.extend(_reachability(tasks, prefix))


def _reachability(tasks: list[TaskSpec], prefix: str) -> list[str]:
    names = [task.name for task in tasks]
    targets = {target for task in tasks for transition in task.next for target in transition.do}
    entries = [name for name in names if name not in targets]
    scope = prefix.rstrip(".") or "workflow"
    if not entries:
        return [f"{scope}: no entry point (every task has an inbound transition)"]
    edges = {task.name: [t for transition in task.next for t in transition.do] for task in tasks}
    reached: set[str] = set()
    stack = list(entries)
    while stack:
        name = stack.pop()
        if name in reached:
            continue
        reached.add(name)
        stack.extend(edges.get(name, []))
    return [
        f"{prefix}tasks[{position}] ({name}): Unreachable task"
        for position, name in enumerate(names)
        if name not in reached
    ]


def _valid_action_ref(ref: str) -> bool:
    parts = ref.split(".")
    return len(parts) >= 2 and all(parts)
