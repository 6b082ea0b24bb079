"""The conductor's vocabulary: events fed in, commands given back, and the persisted state.

Plain data only (docs/workflows.md "Execution"): events and commands serialise to
``{"type": …, …fields}`` and ``WorkflowState`` to JSON (``to_dict``/``from_dict``), so each step
can be stored and replayed. The conductor itself lives in ``attune.workflow.conductor``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from attune.workflow.records import ACTIVE, TERMINAL_WORKFLOW, TaskRecord, TaskStatus, WorkflowStatus

__all__ = [
    "ACTIVE",
    "TERMINAL_WORKFLOW",
    "Cancel",
    "CancelTasks",
    "Command",
    "Continue",
    "Event",
    "Finish",
    "Pause",
    "Paused",
    "Rerun",
    "Resume",
    "RunTask",
    "Start",
    "StartTimer",
    "TaskFinished",
    "TimerFired",
    "WorkflowState",
    "command_from_dict",
    "command_to_dict",
    "event_from_dict",
    "event_to_dict",
]


# -- events ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Start:
    """Start the workflow with these (raw) parameters; defaults are filled from the spec."""

    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskFinished:
    """A child execution ended. ``index`` is the with_items index (None for a plain task)."""

    task: str
    index: int | None
    status: str  # 'completed' | 'failed' | 'timeout' | 'cancelled'
    result: Any = None


@dataclass(frozen=True)
class TimerFired:
    """A timer started with StartTimer expired."""

    task: str
    index: int | None
    kind: str  # 'retry' | 'delay'


@dataclass(frozen=True)
class Cancel:
    """Cancel the workflow: cancel running children, then finish ``cancelled``."""


@dataclass(frozen=True)
class Pause:
    """Stop dispatching; running children finish and are recorded."""


@dataclass(frozen=True)
class Resume:
    """Continue a paused (or pausing) workflow."""


@dataclass(frozen=True)
class Rerun:
    """Re-run failed tasks (None = every failed one), keeping successful results and variables."""

    tasks: list[str] | None = None


@dataclass(frozen=True)
class Continue:
    """Start what an earlier step's start limit held back (``advance``'s ``room``)."""


Event = Start | TaskFinished | TimerFired | Cancel | Pause | Resume | Rerun | Continue


# -- commands --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunTask:
    """Create and request a child execution of ``action`` with ``input`` as its parameters.

    ``attempt`` is 1 for the first run, 2 for the first retry, … (retry_count = attempt - 1).
    ``timeout`` is the child's run time limit in seconds; a child that exceeds it must be reported
    as TaskFinished(status='timeout').
    """

    task: str
    index: int | None
    action: str
    input: dict[str, Any]
    timeout: int | None = None
    attempt: int = 1


@dataclass(frozen=True)
class StartTimer:
    """Call back with TimerFired(task, index, kind) after ``seconds``."""

    task: str
    index: int | None
    kind: str
    seconds: float


@dataclass(frozen=True)
class CancelTasks:
    """Cancel these running children, given as (task, index) pairs; each reports back TaskFinished."""

    tasks: list[tuple[str, int | None]]


@dataclass(frozen=True)
class Finish:
    """The workflow is over: set the parent execution's status and result."""

    status: str  # 'completed' | 'failed' | 'cancelled'
    result: dict[str, Any]
    error: str | None = None


@dataclass(frozen=True)
class Paused:
    """Every running child has finished after a Pause: the parent may be marked paused."""


Command = RunTask | StartTimer | CancelTasks | Finish | Paused


# -- state -----------------------------------------------------------------------------------------


@dataclass
class WorkflowState:
    """Everything the conductor needs between steps; plain JSON data via ``to_dict``/``from_dict``.

    ``tasks`` maps task name → :class:`~attune.workflow.records.TaskRecord`. ``errors`` are the
    unhandled failures that fail the workflow; ``held`` are transitions withheld because of them
    (started again by Rerun); ``queued`` are runs postponed by a pause.
    """

    status: WorkflowStatus = WorkflowStatus.RUNNING
    parameters: dict[str, Any] = field(default_factory=dict)
    vars: dict[str, Any] = field(default_factory=dict)
    tasks: dict[str, TaskRecord] = field(default_factory=dict)
    pending_joins: dict[str, list[str]] = field(default_factory=dict)
    queued: list[list[Any]] = field(default_factory=list)
    held: list[list[Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    runs: int = 0
    max_runs: int = 1000
    started_at: str = ""
    result: dict[str, Any] | None = None
    #: What changed in with_items tasks since the owner last cleared it: ``("items", task, None)``
    #: for a new item list, ``("item", task, index)`` for an item's outcome set or reset. Lets a
    #: store persist only the changed items; not part of ``to_dict``.
    journal: list[tuple[str, str, int | None]] = field(default_factory=list, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The state as JSON data (shares structure with the state; serialise it, do not mutate it)."""
        return {
            "status": self.status,
            "parameters": self.parameters,
            "vars": self.vars,
            "tasks": self.tasks,
            "pending_joins": self.pending_joins,
            "queued": self.queued,
            "held": self.held,
            "errors": self.errors,
            "warnings": self.warnings,
            "runs": self.runs,
            "max_runs": self.max_runs,
            "started_at": self.started_at,
            "result": self.result,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WorkflowState:
        """Rebuild a state saved with ``to_dict`` (after a JSON round trip)."""
        return cls(
            status=WorkflowStatus(str(data.get("status", "running"))),
            parameters=dict(data.get("parameters") or {}),
            vars=dict(data.get("vars") or {}),
            tasks={str(name): _record(record) for name, record in (data.get("tasks") or {}).items()},
            pending_joins={str(k): list(v) for k, v in (data.get("pending_joins") or {}).items()},
            queued=[list(entry) for entry in data.get("queued") or []],
            held=[list(entry) for entry in data.get("held") or []],
            errors=[dict(entry) for entry in data.get("errors") or []],
            warnings=list(data.get("warnings") or []),
            runs=int(data.get("runs", 0)),
            max_runs=int(data.get("max_runs", 1000)),
            started_at=str(data.get("started_at", "")),
            result=data.get("result"),
        )

    @property
    def finished(self) -> bool:
        """True once the workflow reached completed, failed or cancelled."""
        return self.status in TERMINAL_WORKFLOW


def _record(data: Mapping[str, Any]) -> TaskRecord:
    """A persisted task record (a plain dict, whatever version wrote it) with a typed status."""
    record: TaskRecord = dict(data)  # type: ignore[assignment]
    record["status"] = TaskStatus(str(data.get("status", "pending")))
    return record


# -- serialisation of commands and events ----------------------------------------------------------

_COMMANDS: dict[str, type[Any]] = {
    cls.__name__: cls for cls in (RunTask, StartTimer, CancelTasks, Finish, Paused)
}
_EVENTS: dict[str, type[Any]] = {
    cls.__name__: cls for cls in (Start, TaskFinished, TimerFired, Cancel, Pause, Resume, Rerun, Continue)
}


def _as_dict(obj: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"type": type(obj).__name__}
    for item in fields(obj):
        value = getattr(obj, item.name)
        if isinstance(obj, CancelTasks) and item.name == "tasks":
            value = [[name, index] for name, index in value]
        data[item.name] = value
    return data


def _from_dict(registry: dict[str, type[Any]], data: Mapping[str, Any]) -> Any:
    kind = data.get("type")
    cls = registry.get(str(kind))
    if cls is None:
        raise ValueError(f"unknown type {kind!r}")
    values = {item.name: data[item.name] for item in fields(cls) if item.name in data}
    if cls is CancelTasks:
        values["tasks"] = [(str(name), index) for name, index in values.get("tasks", [])]
    return cls(**values)


def command_to_dict(cmd: Command) -> dict[str, Any]:
    """``{"type": "RunTask", ...fields}`` for persistence and logging."""
    return _as_dict(cmd)


def command_from_dict(data: Mapping[str, Any]) -> Command:
    """Inverse of ``command_to_dict``."""
    command: Command = _from_dict(_COMMANDS, data)
    return command


def event_to_dict(event: Event) -> dict[str, Any]:
    """``{"type": "TaskFinished", ...fields}`` for persistence and logging."""
    return _as_dict(event)


def event_from_dict(data: Mapping[str, Any]) -> Event:
    """Inverse of ``event_to_dict``."""
    event: Event = _from_dict(_EVENTS, data)
    return event
