"""The workflow language: parse any dialect, serialise, and validate (docs/workflows.md).

``parse_workflow`` detects the dialect of a document (Attune's native format, Orquesta, the task-map
form, ActionChain: ``attune.workflow.dialects``) and returns the immutable ``WorkflowSpec`` the pure
conductor runs, rejecting everything the format says MUST be rejected and reporting all problems at
once. ``to_document`` gives the normalised native document that is stored as
``workflow_definition.definition`` (``parse(to_document(x)) == x`` whatever the source dialect).
``validate_workflow`` is the one semantic validation pass (problems reported, not raised). Pure.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from attune.workflow import dialects
from attune.workflow.model import (
    BACKOFFS,
    CHART_META,
    DIALECTS,
    ENGINE_COMMANDS,
    RESERVED_NAMES,
    RESULT_TEMPLATE,
    TASK_TYPES,
    RetrySpec,
    TaskSpec,
    TransitionSpec,
    WorkflowSpec,
    WorkflowValidationError,
    walk,
)

__all__ = [
    "BACKOFFS",
    "CHART_META",
    "DEFAULT_MAX_TASKS",
    "DIALECTS",
    "ENGINE_COMMANDS",
    "RESERVED_NAMES",
    "RESULT_TEMPLATE",
    "TASK_TYPES",
    "RetrySpec",
    "TaskSpec",
    "TransitionSpec",
    "WorkflowSpec",
    "WorkflowValidationError",
    "parse_workflow",
    "structural_problems",
    "to_document",
    "validate_workflow",
]

_VAR_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


#: Tasks one workflow may declare (nested parallel tasks included) unless configured otherwise
#: (``executor.workflow_max_tasks``, docs/configuration.md).
DEFAULT_MAX_TASKS = 1_000


def parse_workflow(
    doc: Mapping[str, Any],
    *,
    ref: str | None = None,
    runner_type: str | None = None,
    parameters: Mapping[str, Any] | None = None,
    max_tasks: int = DEFAULT_MAX_TASKS,
) -> WorkflowSpec:
    """Parse a workflow document of any dialect into a ``WorkflowSpec``.

    ``ref``, when given, is the ref derived from the file name or the action: a document without
    ``ref`` takes it, a document with a different ``ref`` is rejected. ``runner_type`` is the
    st2 action's runner (``orquesta``, ``action-chain``) when the file belongs to one, and
    ``parameters`` that action's parameter schema. A workflow that could never start (no entry
    task) or declares more than ``max_tasks`` tasks is refused too. Raises WorkflowValidationError.
    """
    spec = dialects.parse(doc, ref=ref, runner_type=runner_type, parameters=parameters)
    problems = structural_problems(spec, max_tasks=max_tasks)
    if problems:
        raise WorkflowValidationError(problems)
    return spec


def structural_problems(spec: WorkflowSpec, *, max_tasks: int = DEFAULT_MAX_TASKS) -> list[str]:
    """What makes a workflow unrunnable rather than merely suspicious (docs/workflows.md):

    * a scope (the workflow, or a parallel task's block) whose every task is the target of a
      transition has no task to start with — a pure cycle would "complete" having run nothing;
    * more than ``max_tasks`` tasks: every step of the engine walks the whole state, so an
      unbounded definition is a denial of service.
    """
    problems: list[str] = []
    count = sum(1 for _ in walk(spec.tasks))
    if count > max_tasks:
        problems.append(
            f"the workflow declares {count} tasks; at most {max_tasks} are allowed "
            "(executor.workflow_max_tasks)"
        )
    scopes: list[tuple[str, str | None]] = [("workflow", None)]
    blocks = [task for task in walk(spec.tasks) if task.type == "parallel" and task.tasks]
    scopes += [(f"parallel task {task.name!r}", task.name) for task in blocks]
    for label, scope in scopes:
        if spec.scope_tasks(scope) and not spec.entry_points(scope):
            names = ", ".join(t.name for t in spec.scope_tasks(scope))
            problems.append(
                f"{label} has no entry task: every task ({names}) is the target of a transition, "
                "so nothing would ever start; remove one inbound transition"
            )
    return problems


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
    ordered = spec.orquesta  # its vars and outputs render in order; JSONB would sort map keys
    doc["vars"] = [{name: value} for name, value in spec.vars.items()] if ordered else dict(spec.vars)
    doc["tasks"] = [_task_document(task) for task in spec.tasks]
    if spec.output_map is not None:
        outputs = spec.output_map.items()
        doc["output_map"] = [{name: value} for name, value in outputs] if ordered else dict(outputs)
    doc["tags"] = list(spec.tags)
    if spec.dialect != "attune":
        doc["dialect"] = spec.dialect
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
        "item_names": task.item_names,
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
        if task.retry.when is not None:
            retry["when"] = task.retry.when
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
    """The semantic problems of a parsed workflow (empty when it is sound).

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
                if not (spec.orquesta and task.type == "action"):  # Orquesta: a routing-only task
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
                if target not in names and target not in ENGINE_COMMANDS:
                    problems.append(f"{where}: next[{index}].do references unknown task {target!r}")
        if task.tasks:
            _validate_tasks(task.tasks, f"{where}.", spec, seen, problems, known_actions)
    problems.extend(_reachability(tasks, prefix))


def _reachability(tasks: list[TaskSpec], prefix: str) -> list[str]:
    names = [task.name for task in tasks]
    targets = {target for task in tasks for transition in task.next for target in transition.do}
    targets -= ENGINE_COMMANDS - set(names)
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
