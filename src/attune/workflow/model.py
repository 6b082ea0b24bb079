"""The workflow model the conductor runs: immutable specs produced by every dialect front end.

docs/workflows.md. A ``WorkflowSpec`` is what ``attune.workflow.spec.parse_workflow`` returns for
Attune's native format, the Orquesta dialect, the task-map form and ActionChain alike; ``dialect``
records which front end produced it, because a few run-time rules differ (docs/stackstorm.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from attune.errors import ValidationFailed

TASK_TYPES = ("action", "workflow", "parallel")
BACKOFFS = ("constant", "linear", "exponential")
RESERVED_NAMES = frozenset({"parameters", "vars", "task", "system", "kv", "pack", "item", "batch", "index"})
CHART_META = "__chart_meta__"
RESULT_TEMPLATE = "{{ result() }}"
ENGINE_COMMANDS = frozenset({"continue", "noop", "fail", "retry"})
"""Names a transition's ``do`` may hold besides task names (Orquesta engine commands)."""
DIALECTS = ("attune", "orquesta", "action-chain")
"""Front ends whose run-time rules differ; the task-map form runs with Attune's rules."""


class WorkflowValidationError(ValidationFailed):
    """A workflow document is invalid; ``errors`` lists every problem (task and field named)."""

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors = list(errors)
        shown = "; ".join(self.errors[:10])
        more = f" (and {len(self.errors) - 10} more)" if len(self.errors) > 10 else ""
        super().__init__(f"Invalid workflow: {shown}{more}")


@dataclass(frozen=True)
class RetrySpec:
    """Per-task retry policy.

    ``on_error`` is an optional condition template evaluated with ``result()`` = the failed
    attempt; the attempt is retried only when it is true. Timeouts are failures and are retried too.
    ``when`` (Orquesta's form) is evaluated after every attempt, successful or not: an attempt
    is retried while it is true, which also serves polling ("retry until the result says ready").
    """

    count: int
    delay: float
    backoff: str = "constant"
    max_delay: float | None = None
    on_error: str | None = None
    when: str | None = None

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
    #: ``x, y in <% zip(...) %>``: each item (a list) becomes ``{x: …, y: …}``; one name wraps it.
    item_names: list[str] | None = None


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
    dialect: str = "attune"

    @property
    def orquesta(self) -> bool:
        """Run with Orquesta's rules (docs/stackstorm.md): templated vars, ordered dispatch, …"""
        return self.dialect in ("orquesta", "action-chain")

    @cached_property
    def by_name(self) -> dict[str, TaskSpec]:
        """Every task, sub-tasks of parallel tasks included, by name."""
        found: dict[str, TaskSpec] = {}
        for task in walk(self.tasks):
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
        result: dict[str, list[str]] = {task.name: [] for task in walk(self.tasks)}
        for task in walk(self.tasks):
            for transition in task.next:
                for target in transition.do:
                    if target in ENGINE_COMMANDS and target not in result:
                        continue
                    sources = result.setdefault(target, [])
                    if task.name not in sources:
                        sources.append(task.name)
        return result

    @cached_property
    def template_texts(self) -> tuple[str, ...]:
        """Every string a template may be in (inputs, conditions, publishes, vars, outputs)."""
        texts: list[str] = []

        def collect(value: Any) -> None:
            if isinstance(value, str):
                texts.append(value)
            elif isinstance(value, dict):
                for item in value.values():
                    collect(item)
            elif isinstance(value, list | tuple):
                for item in value:
                    collect(item)

        collect(self.vars)
        collect(self.output_map)
        collect(self.parameters)
        for task in walk(self.tasks):
            collect([task.input, task.when, task.with_items])
            if task.retry is not None:
                collect([task.retry.on_error, task.retry.when])
            for transition in task.next:
                collect([transition.when, [value for _, value in transition.publish]])
        return tuple(texts)

    def entry_points(self, scope: str | None = None) -> list[str]:
        """Tasks with no inbound edge, at top level or inside parallel ``scope``.

        Document order; by name for Orquesta-style workflows, which start tasks in name order.
        """
        tasks = self.tasks if scope is None else self.by_name[scope].tasks
        names = [task.name for task in tasks if not self.inbound.get(task.name)]
        return sorted(names) if self.orquesta else names

    def scope_tasks(self, scope: str | None) -> list[TaskSpec]:
        """The tasks of one scope: top level (None) or the sub-tasks of a parallel task."""
        return self.tasks if scope is None else self.by_name[scope].tasks


def walk(tasks: Iterable[TaskSpec]) -> Iterable[TaskSpec]:
    for task in tasks:
        yield task
        yield from walk(task.tasks)
