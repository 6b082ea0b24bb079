"""The conductor's task records and statuses, and the one table of the status changes it may make.

A task record is plain JSON data (it is persisted with the workflow's state and read back by
every later step, also after an upgrade), typed here as :class:`TaskRecord`. Its ``status`` and
the workflow's own status are :class:`TaskStatus` and :class:`WorkflowStatus`, string enums, so
a persisted value is the same string it always was. Every change of either status goes through
:func:`set_status` / :func:`set_workflow_status`, which refuse a change the tables below do not
list (docs/workflows.md "Execution").
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, TypedDict

__all__ = [
    "ACTIVE",
    "FAILED_OUTCOMES",
    "TASK_TRANSITIONS",
    "TERMINAL_WORKFLOW",
    "WORKFLOW_TRANSITIONS",
    "InvalidTransition",
    "TaskRecord",
    "TaskStatus",
    "WorkflowStatus",
    "new_record",
    "set_status",
    "set_workflow_status",
    "task_allowed",
    "task_status",
    "workflow_allowed",
]


class TaskStatus(StrEnum):
    """Where one task (a plain task, a with_items task or a parallel group) stands."""

    PENDING = "pending"
    DELAYED = "delayed"
    RUNNING = "running"
    RETRYING = "retrying"
    COMPLETED = "completed"
    FAILED = "failed"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"


class WorkflowStatus(StrEnum):
    """Where the workflow run as a whole stands (the conductor's view)."""

    RUNNING = "running"
    PAUSING = "pausing"
    PAUSED = "paused"
    CANCELING = "canceling"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE = frozenset({TaskStatus.PENDING, TaskStatus.DELAYED, TaskStatus.RUNNING, TaskStatus.RETRYING})
"""Task statuses that keep a workflow (or a parallel scope) busy."""
FAILED_OUTCOMES = frozenset({TaskStatus.FAILED, TaskStatus.TIMEOUT})
"""Task outcomes that count as a failure (a cancelled task does not fail its with_items task)."""
TERMINAL_WORKFLOW = frozenset({WorkflowStatus.COMPLETED, WorkflowStatus.FAILED, WorkflowStatus.CANCELLED})

_T = TaskStatus
#: Every change of a task's status the conductor makes: source → the statuses it may go to.
#: ``None`` is a new record (a task scheduled again replaces its old, inactive record).
TASK_TRANSITIONS: Mapping[TaskStatus | None, frozenset[TaskStatus]] = {
    # scheduled; or refused at once past the workflow's run limit
    None: frozenset({_T.PENDING, _T.FAILED}),
    # ``when`` false; a delay; started; cancelled before it started
    _T.PENDING: frozenset({_T.SKIPPED, _T.DELAYED, _T.RUNNING, _T.CANCELLED}),
    # the delay is over (queued while paused, or started); cancelled while waiting
    _T.DELAYED: frozenset({_T.PENDING, _T.RUNNING, _T.CANCELLED}),
    # waiting for a retry, or its outcome
    _T.RUNNING: frozenset({_T.RETRYING, _T.COMPLETED, _T.FAILED, _T.TIMEOUT, _T.CANCELLED}),
    # the retry is due (queued while paused, or started); cancelled while waiting
    _T.RETRYING: frozenset({_T.PENDING, _T.RUNNING, _T.CANCELLED}),
    # re-run: a plain task is marked failed and scheduled afresh; a with_items task resumes
    _T.FAILED: frozenset({_T.RUNNING}),
    _T.TIMEOUT: frozenset({_T.FAILED, _T.RUNNING}),
    _T.CANCELLED: frozenset({_T.FAILED, _T.RUNNING}),
    _T.COMPLETED: frozenset(),
    _T.SKIPPED: frozenset(),
}

_W = WorkflowStatus
#: Every change of the workflow's own status the conductor makes.
WORKFLOW_TRANSITIONS: Mapping[WorkflowStatus, frozenset[WorkflowStatus]] = {
    _W.RUNNING: frozenset({_W.PAUSING, _W.CANCELING, _W.COMPLETED, _W.FAILED}),
    # every running task ended; resumed before that; cancelled
    _W.PAUSING: frozenset({_W.PAUSED, _W.RUNNING, _W.CANCELING}),
    _W.PAUSED: frozenset({_W.RUNNING, _W.CANCELING}),
    _W.CANCELING: frozenset({_W.CANCELLED}),
    _W.COMPLETED: frozenset(),
    # re-run
    _W.FAILED: frozenset({_W.RUNNING}),
    _W.CANCELLED: frozenset({_W.RUNNING}),
}


class InvalidTransition(ValueError):
    """The conductor tried a status change the transition table does not list (a bug)."""


class TaskRecord(TypedDict, total=False):
    """One task's record in ``WorkflowState.tasks`` (persisted as JSON as it is).

    ``status``, ``attempts`` and ``trigger`` (the predecessor that started it) are always
    there; ``result`` (and ``error``) once it finished. A parallel group has ``kind="parallel"``
    and the ``errors`` of its scope; a with_items task has ``kind="items"`` and its item window
    (``items``, ``next``, ``inflight``, ``done``, ``failed``, ``statuses``, ``results``,
    ``waiting``, ``redo``, ``item_attempts``). Orquesta tasks carry their branch context
    (``ctx``, ``ctx_out``, ``ctx_end``); ``run_on_fail`` marks a ``fail`` command's task.
    """

    status: TaskStatus
    attempts: int
    trigger: str | None
    result: Any
    error: str
    kind: str
    errors: list[dict[str, Any]]
    ctx: dict[str, Any]
    ctx_out: dict[str, Any]
    ctx_end: int
    run_on_fail: bool
    items: list[Any]
    next: int
    inflight: int
    done: int
    failed: int
    statuses: list[str | None]
    results: list[Any]
    waiting: list[int]
    redo: list[int]
    item_attempts: dict[str, int]


def task_allowed(source: TaskStatus | None, target: TaskStatus) -> bool:
    """Whether the table lets a task go from ``source`` (None: a new record) to ``target``."""
    return target in TASK_TRANSITIONS.get(source, frozenset())


def workflow_allowed(source: WorkflowStatus, target: WorkflowStatus) -> bool:
    """Whether the table lets the workflow go from ``source`` to ``target``."""
    return target in WORKFLOW_TRANSITIONS.get(source, frozenset())


def task_status(record: Mapping[str, Any]) -> TaskStatus:
    """The status of a record (as persisted: a plain string)."""
    return TaskStatus(record["status"])


def new_record(status: TaskStatus, trigger: str | None, **values: Any) -> TaskRecord:
    """A fresh record of a task just scheduled (``status`` as the table allows for a new one)."""
    if not task_allowed(None, status):
        raise InvalidTransition(f"a task cannot start {status.value}")
    record: TaskRecord = {"status": status, "attempts": 0, "trigger": trigger}
    record.update(values)  # type: ignore[typeddict-item]
    return record


def set_status(record: TaskRecord, target: TaskStatus) -> None:
    """Move a task to ``target``; staying where it is is no change. Raises InvalidTransition."""
    source = TaskStatus(record["status"])
    if source != target and not task_allowed(source, target):
        raise InvalidTransition(f"task status {source.value} → {target.value} is not allowed")
    record["status"] = target


def set_workflow_status(current: str, target: WorkflowStatus) -> WorkflowStatus:
    """The workflow's next status ``target``, checked against the table. Raises InvalidTransition."""
    source = WorkflowStatus(current)
    if source != target and not workflow_allowed(source, target):
        raise InvalidTransition(f"workflow status {source.value} → {target.value} is not allowed")
    return target
