"""Running workflows for real: persistence around the pure conductor (services.md §2).

The conductor (:mod:`attune.workflow.conductor`) decides; this module loads its state, feeds it an
event and carries out the commands it returns, all in the caller's transaction so the state, the
child executions and the staged messages commit together:

* ``RunTask`` → a child execution through :func:`attune.db.repos.runs.request_execution`
  (``parent`` = the workflow's execution, enforcement and env vars copied) carrying
  ``workflow_task`` and the shadow columns. A child that cannot be created (unknown action,
  invalid parameters) is reported straight back as a failed task.
* ``StartTimer`` → a due time persisted in the state; :class:`WorkflowEngine` fires it.
* ``CancelTasks`` → the children are cancelled like the cancel route does (before a worker has
  them: ``cancelled`` at once; running: ``canceling`` + ``ExecutionCancel``; a nested workflow:
  cancelled recursively).
* ``Finish`` → the parent execution ends through ``finish_execution`` (which stages
  ``ExecutionCompleted``, so an enclosing workflow advances and rule slots are released).
* ``Paused`` → ``workflow_execution.paused = true`` once no task runs any more. The parent
  execution shows ``paused`` from the moment the pause is accepted until it is resumed
  (docs/workflows.md).

The whole conductor state lives in ``workflow_execution.variables`` under :data:`STATE_KEY`
(timers under :data:`TIMERS_KEY`); the list columns mirror the task statuses for readers.
Steps of one workflow are serialised by a row lock (PostgreSQL) or SQLite's ``BEGIN IMMEDIATE``.
A child is counted once: its ``workflow_task.counted`` flag is set in the step that counts it,
so a redelivered ``ExecutionCompleted`` changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer
from sqlalchemy.orm.attributes import flag_modified

from attune import inquiries
from attune.bus.messages import MessageType, cancel_routing
from attune.clock import Clock, SystemClock
from attune.db.models import Action, Execution, WorkflowDefinition, WorkflowExecution, WorkflowItem
from attune.db.outbox import enqueue
from attune.db.repos import runs
from attune.db.repos import workflows as repo
from attune.db.types import utcnow
from attune.domain import budget, keyrefs, params
from attune.domain.crypto import SecretBox
from attune.domain.enums import TERMINAL_EXECUTION_STATUSES, ExecutionStatus
from attune.domain.params import secret_names
from attune.domain.templates import TemplateEngine
from attune.errors import AttuneError, Conflict
from attune.executor import inline as inline_tasks
from attune.executor import template_keys
from attune.executor.completion import finish_execution, stage_status_changed
from attune.lru import LruCache
from attune.runtime import Runtime
from attune.workflow import conductor
from attune.workflow.spec import WorkflowSpec, WorkflowValidationError, parse_workflow, to_document

log = logging.getLogger(__name__)

SOURCE = "executor"
STATE_KEY = "__state__"
TIMERS_KEY = "__timers__"
#: A fresh token per written state: a cached state is used only if the row still carries its token.
STAMP_KEY = "__stamp__"
#: In a persisted with_items record, where its item lists went (the ``workflow_item`` table).
EXTERNAL_KEY = "__items__"
_ITEM_LISTS = ("items", "statuses", "results")
#: In the persisted state: ``parameters`` are those of the workflow's execution (with defaults).
PARAMETERS_KEY = "__parameters_from_execution__"
#: Seconds between two timer-loop passes.
TIMER_INTERVAL = 0.2
#: In-process children remembered as counted, so their ExecutionCompleted costs no query.
COUNTED_MEMORY = 50_000

_TERMINAL = frozenset(s.value for s in TERMINAL_EXECUTION_STATUSES)
_PARENT_LIVE = (
    ExecutionStatus.RUNNING.value,
    ExecutionStatus.CANCELING.value,
    ExecutionStatus.PAUSED.value,
)
#: A workflow's own execution while it may still be cancelled as a workflow.
_WORKFLOW_ACTIVE = (ExecutionStatus.RUNNING.value, ExecutionStatus.PAUSED.value)
_BEFORE_WORKER = (
    ExecutionStatus.REQUESTED.value,
    ExecutionStatus.SCHEDULING.value,
    ExecutionStatus.SCHEDULED.value,
)
_LIVE_CHILD = (*_BEFORE_WORKER, ExecutionStatus.RUNNING.value, ExecutionStatus.CANCELING.value)
CANCELLED_RESULT = {"succeeded": False, "error": "Execution was cancelled"}
#: The task limit is enforced where definitions come in (API, pack registration); a stored one is
#: run whatever the limit is now, so lowering it never breaks a registered workflow.
STORED_MAX_TASKS = 2**31


class WorkflowStateError(Conflict):
    """The workflow is not in a state that allows the request (409)."""


class SpecCache:
    """Parsed workflow specs keyed by (definition id, updated): parsing happens once per version."""

    def __init__(self, size: int = 256) -> None:
        self._items: LruCache[tuple[int, Any], WorkflowSpec] = LruCache(size)

    def cached(self, definition_id: int, updated: Any) -> WorkflowSpec | None:
        """The spec of version ``updated`` of definition ``definition_id`` if parsed already."""
        return self._items.get((definition_id, updated))

    def get(self, definition: WorkflowDefinition) -> WorkflowSpec:
        """The spec of ``definition``; raises WorkflowValidationError for a broken document."""
        spec = self.cached(definition.id, definition.updated)
        if spec is None:
            spec = self._items.put(
                (definition.id, definition.updated),
                parse_workflow(definition.definition, ref=definition.ref, max_tasks=STORED_MAX_TASKS),
            )
        return spec


class StateCache:
    """Conductor states this engine wrote last, so the next step of a run skips rebuilding it.

    An entry is taken out (not copied) by the step that uses it, which mutates it; it comes back
    only once that step's transaction has committed, under the new stamp.
    """

    def __init__(self, size: int = 64) -> None:
        self._items: LruCache[int, tuple[str, conductor.WorkflowState]] = LruCache(size)

    def take(self, state_id: int, stamp: Any) -> conductor.WorkflowState | None:
        """The cached state of run ``state_id`` if it is the one stamped ``stamp``."""
        entry = self._items.pop(state_id)
        return entry[1] if entry is not None and entry[0] == stamp else None

    def put(self, state_id: int, stamp: str, state: conductor.WorkflowState) -> None:
        """Remember what a committed step wrote."""
        self._items.put(state_id, (stamp, state))

    def forget(self, state_id: int) -> None:
        """Drop run ``state_id`` (it finished)."""
        self._items.pop(state_id)


@dataclass(frozen=True)
class Written:
    """One run state row a step wrote."""

    state_id: int
    updated: datetime
    timers: list[dict[str, Any]]
    stamp: str
    state: conductor.WorkflowState


@dataclass
class WorkflowContext:
    """What carrying out commands needs besides the session."""

    box: SecretBox | None
    engine: TemplateEngine = field(default_factory=TemplateEngine)
    specs: SpecCache = field(default_factory=SpecCache)
    source: str = SOURCE
    #: Filled by each step: what it wrote, for the engine to remember once the commit is done.
    written: list[Written] = field(default_factory=list)
    #: Rerun requests handed up to an enclosing workflow: execution id → its task names (or None).
    rerun_tasks: dict[int, list[str] | None] = field(default_factory=dict)
    #: States of the engine's last steps (None: always rebuild from the database).
    states: StateCache | None = None
    #: Tasks of in-process actions run inside the step (None: every task is requested).
    inline: inline_tasks.InlineTasks | None = None
    #: Where workflow timers (delays, retry delays) read the time.
    clock: Clock = field(default_factory=SystemClock)


@dataclass
class _Run:
    """One workflow run loaded for a step."""

    row: WorkflowExecution
    parent: Execution
    spec: WorkflowSpec
    state: conductor.WorkflowState
    timers: list[dict[str, Any]]
    actions: dict[str, Action | None] = field(default_factory=dict)
    #: Keys the workflow's templates name, loaded for this step (None: it names none).
    keys: keyrefs.KeyNamespace | None = None


async def _keys_for(
    session: AsyncSession, spec: WorkflowSpec, execution: Execution, ctx: WorkflowContext
) -> keyrefs.KeyNamespace | None:
    """The keys the workflow's templates may read: its own pack's and its runner's (docs/rules.md)."""
    if not keyrefs.referenced(spec.template_texts):
        return None
    action = await session.get(Action, execution.action) if execution.action is not None else None
    return await template_keys.namespace_for(
        session,
        list(spec.template_texts),
        pack_id=action.pack if action is not None else None,
        identity_id=execution.executor,
        box=ctx.box,
    )


# -- start -----------------------------------------------------------------------------------------


async def start_workflow(
    session: AsyncSession, execution: Execution, action: Action, ctx: WorkflowContext
) -> bool:
    """Start the workflow run of a ``requested`` execution of a workflow action.

    Returns False when the execution left ``requested`` meanwhile (cancelled, started twice).
    A disabled, missing or invalid definition fails the execution instead of starting it.
    """
    if execution.status != ExecutionStatus.REQUESTED.value:
        return False
    definition = (
        await session.get(WorkflowDefinition, action.workflow_def)
        if action.workflow_def is not None
        else None
    )
    problem: str | None = None
    spec: WorkflowSpec | None = None
    if definition is None:
        problem = f"Workflow definition of '{action.ref}' not found"
    elif not definition.enabled:
        problem = f"Workflow '{definition.ref}' is disabled"
    else:
        try:
            spec = ctx.specs.get(definition)
        except WorkflowValidationError as exc:
            problem = f"Workflow '{definition.ref}' is invalid: {exc.message}"
    if problem is not None or spec is None or definition is None:
        await finish_execution(
            session,
            execution,
            ExecutionStatus.FAILED,
            {"error": problem, "succeeded": False},
            from_statuses=(ExecutionStatus.REQUESTED.value,),
        )
        log.warning("workflow execution %s failed: %s", execution.id, problem)
        return True
    now = utcnow()
    started = await _move(
        session, execution, ExecutionStatus.REQUESTED, ExecutionStatus.RUNNING, now, started_at=now
    )
    if not started:
        return False
    parameters = runs.full_parameters(execution, ctx.box)
    keys = await _keys_for(session, spec, execution, ctx)
    try:
        state, commands = await budget.offload(
            conductor.start, spec, parameters, engine=ctx.engine, keys=keys
        )
    except Exception as exc:  # a conductor bug or bad parameters must not wedge the execution
        log.exception("workflow %s could not start", definition.ref)
        await finish_execution(
            session,
            execution,
            ExecutionStatus.FAILED,
            {"error": f"Workflow '{definition.ref}' could not start: {exc}", "succeeded": False},
            from_statuses=(ExecutionStatus.RUNNING.value,),
        )
        return True
    document = to_document(spec)
    row = WorkflowExecution(
        execution=execution.id,
        workflow_def=definition.id,
        task_graph={
            **document,
            "entry_points": spec.entry_points(),
            "inbound_edges": spec.inbound,
        },
        variables={},
        status=ExecutionStatus.RUNNING.value,
        current_tasks=[],
        completed_tasks=[],
        failed_tasks=[],
        skipped_tasks=[],
    )
    session.add(row)
    await session.flush()
    run = _Run(row=row, parent=execution, spec=spec, state=state, timers=[], keys=keys)
    await _apply(session, run, commands, ctx)
    await _persist(session, run, ctx)
    log.info("workflow %s started as execution %s", definition.ref, execution.id)
    return True


async def _move(
    session: AsyncSession,
    execution: Execution,
    source: ExecutionStatus,
    target: ExecutionStatus,
    now: datetime | None = None,
    **values: Any,
) -> bool:
    """Move ``execution`` from ``source`` to ``target`` (setting ``values`` too) if it is still in
    ``source``; stage the status change. False when another actor moved it first."""
    now = now or utcnow()
    moved = await session.execute(
        sa.update(Execution)
        .where(Execution.id == execution.id, Execution.status == source.value)
        .values(status=target.value, updated=now, **values)
        .execution_options(synchronize_session=False)
    )
    if getattr(moved, "rowcount", 0) != 1:
        return False
    stage_status_changed(session, execution, source.value, target.value)
    execution.status = target.value
    for name, value in values.items():
        setattr(execution, name, value)
    return True


# -- loading and persisting ------------------------------------------------------------------------


async def _load(session: AsyncSession, row: WorkflowExecution, ctx: WorkflowContext) -> _Run | None:
    # The parameters (perhaps a list of thousands of items) and the result are not needed to
    # take a step: leave them in the database.
    parent = await session.get(
        Execution, row.execution, options=[defer(Execution.config), defer(Execution.result)]
    )
    version = (
        await session.execute(
            sa.select(WorkflowDefinition.ref, WorkflowDefinition.updated).where(
                WorkflowDefinition.id == row.workflow_def
            )
        )
    ).one_or_none()
    if parent is None or version is None:
        return None
    variables = row.variables if isinstance(row.variables, dict) else {}
    raw_state = variables.get(STATE_KEY)
    if not isinstance(raw_state, dict):
        return None
    spec = ctx.specs.cached(row.workflow_def, version.updated)
    if spec is None:
        definition = await session.get(WorkflowDefinition, row.workflow_def)
        try:
            spec = ctx.specs.get(definition) if definition is not None else None
        except WorkflowValidationError:
            spec = None
        if spec is None:
            # The definition was edited into something invalid while this run was going; the
            # normalised document the run started with is still good.
            graph = await session.scalar(
                sa.select(WorkflowExecution.task_graph).where(WorkflowExecution.id == row.id)
            )
            spec = parse_workflow(graph or {}, ref=version.ref, max_tasks=STORED_MAX_TASKS)
    timers = [t for t in variables.get(TIMERS_KEY) or [] if isinstance(t, dict)]
    state = ctx.states.take(row.id, variables.get(STAMP_KEY)) if ctx.states is not None else None
    if state is None:
        state = conductor.WorkflowState.from_dict(raw_state)
        if raw_state.get(PARAMETERS_KEY):
            state.parameters = await _parameters(session, row.execution, spec, ctx)
        await _attach_items(session, row.id, state)
    state.journal.clear()
    return _Run(row=row, parent=parent, spec=spec, state=state, timers=timers)


def _items_table() -> sa.Table:
    return cast(sa.Table, WorkflowItem.__table__)


async def _parameters(
    session: AsyncSession, execution_id: int, spec: WorkflowSpec, ctx: WorkflowContext
) -> dict[str, Any]:
    """The workflow's parameters as :func:`conductor.start` filled them, from its execution."""
    found = (
        await session.execute(
            sa.select(Execution.config, Execution.secret_params).where(Execution.id == execution_id)
        )
    ).one_or_none()
    config, secret_params = found if found is not None else (None, None)
    return params.apply_defaults(runs.parameters_from(config, secret_params, ctx.box), spec.parameters)


async def _attach_items(session: AsyncSession, state_id: int, state: conductor.WorkflowState) -> None:
    """Put back the item lists that :func:`_persist` moved to ``workflow_item``."""
    external = {
        name: record.pop(EXTERNAL_KEY)
        for name, record in state.tasks.items()
        if isinstance(record.get(EXTERNAL_KEY), dict)
    }
    if not external:
        return
    for name, info in external.items():
        count = int(info.get("count", 0))
        record = state.tasks[name]
        record["items"], record["statuses"] = [None] * count, [None] * count
        if info.get("results"):
            record["results"] = [None] * count
    table = _items_table()
    rows = await session.execute(
        sa.select(table.c.task_name, table.c.item_index, table.c.item, table.c.status, table.c.result).where(
            table.c.workflow_execution == state_id, table.c.task_name.in_(sorted(external))
        )
    )
    for name, index, item, status, result in rows.all():
        record = state.tasks[name]
        if not 0 <= index < len(record["items"]):
            continue
        record["items"][index] = item
        record["statuses"][index] = status
        if "results" in record:
            record["results"][index] = result


def task_lists(state: conductor.WorkflowState) -> dict[str, list[str]]:
    """``current``/``completed``/``failed``/``skipped`` task names from the conductor state."""
    lists: dict[str, list[str]] = {"current": [], "completed": [], "failed": [], "skipped": []}
    for name, record in state.tasks.items():
        status = str(record.get("status", "")) if isinstance(record, dict) else ""
        if status in ("completed", "succeeded"):
            lists["completed"].append(name)
        elif status in ("failed", "timeout", "timed_out", "cancelled"):
            lists["failed"].append(name)
        elif status == "skipped":
            lists["skipped"].append(name)
        elif status:
            lists["current"].append(name)
    return lists


def _stored(record: dict[str, Any]) -> dict[str, Any]:
    """A task record as stored in ``variables``: a with_items record without its item lists."""
    if record.get("kind") != "items" or "items" not in record:
        return record
    stored = {key: value for key, value in record.items() if key not in _ITEM_LISTS}
    stored[EXTERNAL_KEY] = {"count": len(record["items"]), "results": "results" in record}
    return stored


def _item_result(record: dict[str, Any], index: int) -> Any:
    """Item ``index``'s result: from the live list, or from the aggregate once the task finished."""
    results = record.get("results")
    if results is not None:
        return results[index]
    aggregate = record.get("result")
    entries = aggregate.get("results") if isinstance(aggregate, dict) else None
    if isinstance(entries, list) and 0 <= index < len(entries) and isinstance(entries[index], dict):
        return entries[index].get("output")
    return None


async def _write_items(session: AsyncSession, run: _Run) -> None:
    """Write the with_items changes the conductor journaled in this step to ``workflow_item``."""
    journal, run.state.journal = run.state.journal, []
    if not journal:
        return
    table = _items_table()
    state_id = run.row.id
    replaced = {name for kind, name, _ in journal if kind == "items"}
    for name in sorted(replaced):
        await session.execute(
            sa.delete(table).where(table.c.workflow_execution == state_id, table.c.task_name == name)
        )
        record = run.state.tasks.get(name) or {}
        if record.get("kind") != "items" or "items" not in record:
            continue
        rows = [
            {
                "workflow_execution": state_id,
                "task_name": name,
                "item_index": index,
                "item": item,
                "status": record["statuses"][index],
                "result": _item_result(record, index),
            }
            for index, item in enumerate(record["items"])
        ]
        if rows:
            await session.execute(sa.insert(table), rows)
    changed = {
        (name, index)
        for kind, name, index in journal
        if kind == "item" and name not in replaced and index is not None
    }
    updates = []
    for name, index in sorted(changed):
        record = run.state.tasks.get(name) or {}
        if record.get("kind") != "items" or not 0 <= index < len(record.get("statuses", [])):
            continue
        updates.append(
            {
                "b_state": state_id,
                "b_task": name,
                "b_index": index,
                "b_status": record["statuses"][index],
                "b_result": _item_result(record, index),
            }
        )
    if updates:
        await session.execute(
            sa.update(table)
            .where(
                table.c.workflow_execution == sa.bindparam("b_state"),
                table.c.task_name == sa.bindparam("b_task"),
                table.c.item_index == sa.bindparam("b_index"),
            )
            .values(
                status=sa.bindparam("b_status"), result=sa.bindparam("b_result", type_=table.c.result.type)
            )
            .execution_options(synchronize_session=False),
            updates,
        )


async def _persist(session: AsyncSession, run: _Run, ctx: WorkflowContext) -> None:
    row = run.row
    await _write_items(session, run)
    lists = task_lists(run.state)
    core = run.state.to_dict()
    core["tasks"] = {name: _stored(record) for name, record in run.state.tasks.items()}
    # Rebuilt from the execution when needed: never copied into every step's write (nor, for
    # secret parameters, stored in clear).
    core["parameters"] = {}
    core[PARAMETERS_KEY] = True
    stamp = uuid.uuid4().hex
    row.variables = {STATE_KEY: core, TIMERS_KEY: list(run.timers), STAMP_KEY: stamp}
    # The conductor mutates nested lists it shares with the loaded value: always write the column.
    flag_modified(row, "variables")
    row.current_tasks = [] if row.status in _TERMINAL else lists["current"]
    row.completed_tasks = lists["completed"]
    row.failed_tasks = lists["failed"]
    row.skipped_tasks = lists["skipped"]
    row.updated = utcnow()
    ctx.written.append(Written(row.id, row.updated, list(run.timers), stamp, run.state))


# -- advancing -------------------------------------------------------------------------------------


def _task_status(child: Execution) -> str:
    status = child.status
    if status in (
        ExecutionStatus.COMPLETED.value,
        ExecutionStatus.TIMEOUT.value,
        ExecutionStatus.CANCELLED.value,
    ):
        return status
    return ExecutionStatus.FAILED.value


async def advance_child(
    session: AsyncSession, child_id: int, ctx: WorkflowContext, state_id: int | None = None
) -> bool:
    """Count the finished child ``child_id`` in its workflow run; False when there is nothing to do.

    ``state_id`` is the child's ``workflow_execution_id`` when the caller read it already.
    """
    if state_id is None:
        state_id = await session.scalar(
            sa.select(Execution.workflow_execution_id).where(Execution.id == child_id)
        )
    if state_id is None:
        return False
    row = await repo.lock_state(session, state_id)
    if row is None or row.status in _TERMINAL:
        return False
    child = (
        await session.execute(
            sa.select(Execution).where(Execution.id == child_id).execution_options(populate_existing=True)
        )
    ).scalar_one()
    task = child.workflow_task if isinstance(child.workflow_task, dict) else None
    if task is None or task.get("counted") or child.status not in _TERMINAL:
        return False
    child.workflow_task = {
        **task,
        "counted": True,
        "completed_at": utcnow().isoformat(),
        "timed_out": child.status == ExecutionStatus.TIMEOUT.value,
    }
    run = await _load(session, row, ctx)
    if run is None:
        return False
    event = conductor.TaskFinished(
        task=str(task.get("task_name")),
        index=task.get("task_index"),
        status=_task_status(child),
        result=child.result,
    )
    await _step(session, run, event, ctx)
    return True


async def advance_children(
    session: AsyncSession, state_id: int, child_ids: Sequence[int], ctx: WorkflowContext
) -> int:
    """Count the finished children ``child_ids`` of run ``state_id`` in one step: the run is
    loaded and written once for the whole batch (each child still counted once). Returns how
    many were counted."""
    row = await repo.lock_state(session, state_id)
    if row is None or row.status in _TERMINAL:
        return 0
    query = (
        sa.select(Execution)
        .where(Execution.id.in_(list(child_ids)))
        .order_by(Execution.id)
        .execution_options(populate_existing=True)
    )
    events: list[conductor.Event] = []
    for child in (await session.execute(query)).scalars().all():
        task = child.workflow_task if isinstance(child.workflow_task, dict) else None
        if task is None or task.get("counted") or child.status not in _TERMINAL:
            continue
        if child.workflow_execution_id != state_id:
            continue
        child.workflow_task = {
            **task,
            "counted": True,
            "completed_at": utcnow().isoformat(),
            "timed_out": child.status == ExecutionStatus.TIMEOUT.value,
        }
        events.append(
            conductor.TaskFinished(
                task=str(task.get("task_name")),
                index=task.get("task_index"),
                status=_task_status(child),
                result=child.result,
            )
        )
    if not events:
        return 0
    run = await _load(session, row, ctx)
    if run is None:
        return 0
    run.keys = await _keys_for(session, run.spec, run.parent, ctx)
    for event in events:
        run.state, commands = conductor.advance(run.spec, run.state, event, engine=ctx.engine, keys=run.keys)
        await _apply(session, run, commands, ctx)
    await _persist(session, run, ctx)
    return len(events)


async def fire_timer(
    session: AsyncSession, state_id: int, timer: dict[str, Any], ctx: WorkflowContext
) -> bool:
    """Fire one due timer of run ``state_id`` (if it is still pending)."""
    row = await repo.lock_state(session, state_id)
    if row is None or row.status in _TERMINAL:
        return False
    run = await _load(session, row, ctx)
    if run is None or timer not in run.timers:
        return False
    run.timers.remove(timer)
    event = conductor.TimerFired(task=timer["task"], index=timer.get("index"), kind=timer["kind"])
    await _step(session, run, event, ctx)
    return True


async def advance_deferred(
    session: AsyncSession, state_id: int, ids: list[int], ctx: WorkflowContext
) -> None:
    """Run the deferred in-process children ``ids`` of run ``state_id`` and count them in one step
    (attune.executor.inline): one transaction for the whole batch."""
    row = await repo.lock_state(session, state_id)
    if row is None or row.status in _TERMINAL or ctx.inline is None:
        return
    finished = await ctx.inline.run_deferred(session, ids)
    if not finished:
        return
    run = await _load(session, row, ctx)
    if run is None:
        return
    run.keys = await _keys_for(session, run.spec, run.parent, ctx)
    for task, status, result in finished:
        event = conductor.TaskFinished(
            task=str(task.get("task_name")), index=task.get("task_index"), status=status, result=result
        )
        run.state, commands = conductor.advance(run.spec, run.state, event, engine=ctx.engine, keys=run.keys)
        await _apply(session, run, commands, ctx)
    await _persist(session, run, ctx)


async def _step(session: AsyncSession, run: _Run, event: conductor.Event, ctx: WorkflowContext) -> None:
    run.keys = await _keys_for(session, run.spec, run.parent, ctx)
    state, commands = await budget.offload(
        conductor.advance, run.spec, run.state, event, engine=ctx.engine, keys=run.keys
    )
    run.state = state
    await _apply(session, run, commands, ctx)
    await _persist(session, run, ctx)


# -- commands --------------------------------------------------------------------------------------


async def _apply(
    session: AsyncSession, run: _Run, commands: Sequence[conductor.Command], ctx: WorkflowContext
) -> None:
    """Carry out ``commands``; failures to create a child are fed back as failed tasks."""
    queue: deque[conductor.Command] = deque(commands)
    while queue:
        command = queue.popleft()
        feedback: conductor.Event | None = None
        if isinstance(command, conductor.RunTask):
            handled, feedback = await _run_inline(session, run, command, ctx)
            if not handled:
                feedback = await _run_task(session, run, command, ctx)
        elif isinstance(command, conductor.StartTimer):
            due = ctx.clock.now() + timedelta(seconds=max(float(command.seconds), 0.0))
            run.timers.append(
                {"task": command.task, "index": command.index, "kind": command.kind, "due": due.isoformat()}
            )
        elif isinstance(command, conductor.CancelTasks):
            await _cancel_tasks(session, run, command.tasks, ctx)
        elif isinstance(command, conductor.Finish):
            await _finish(session, run, command)
        elif isinstance(command, conductor.Paused):
            run.row.paused = True
            run.row.pause_reason = run.row.pause_reason or "Paused on request"
        if feedback is not None:
            run.state, more = await budget.offload(
                conductor.advance, run.spec, run.state, feedback, engine=ctx.engine, keys=run.keys
            )
            queue.extend(more)
    if ctx.inline is not None:
        await ctx.inline.flush(session)


async def _action(session: AsyncSession, run: _Run, ref: str) -> Action | None:
    if ref not in run.actions:
        run.actions[ref] = await session.scalar(sa.select(Action).where(Action.ref == ref))
    return run.actions[ref]


async def _run_task(
    session: AsyncSession, run: _Run, command: conductor.RunTask, ctx: WorkflowContext
) -> conductor.Event | None:
    action = await _action(session, run, command.action)
    failure: str | None = None
    if action is None:
        failure = f"Action '{command.action}' not found"
    else:
        parent = run.parent
        public, revealed = _split_input(run, action, command)
        try:
            child = await runs.request_execution(
                session,
                action,
                public,
                box=ctx.box,
                source_service=ctx.source,
                executor=parent.executor,
                enforcement=parent.enforcement,
                parent=parent.id,
                env_vars=parent.env_vars,
                retry_count=command.attempt - 1,
                secret_values=revealed or None,
            )
            child.workflow_task = _task_link(run, command)
            child.workflow_execution_id = run.row.id
            child.workflow_task_name = command.task
            # Retries of a workflow task are the workflow's business (task ``retry``), not
            # the action-level retry policy's.
            child.max_retries = 0
            await session.flush()
        except AttuneError as exc:
            failure = exc.message
    if failure is None:
        return None
    log.warning("workflow execution %s: task %s not started: %s", run.parent.id, command.task, failure)
    return conductor.TaskFinished(
        task=command.task,
        index=command.index,
        status=ExecutionStatus.FAILED.value,
        result={"succeeded": False, "error": failure},
    )


def _split_input(
    run: _Run, action: Action, command: conductor.RunTask
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the task's input as stored, the decrypted values that go to ``secret_params`` only)."""
    declared = secret_names(runs.flat_schema(action.param_schema))
    texts = run.keys.revealed if run.keys is not None else []
    # Decrypted keys (``decrypt_kv``, secret parameters) are stored only as secret parameters.
    public, revealed = keyrefs.split_revealed(command.input, declared, texts)
    for name in declared & set(revealed):
        public[name] = revealed.pop(name)
    return public, revealed


def _task_link(run: _Run, command: conductor.RunTask) -> dict[str, Any]:
    """A child's ``workflow_task``: its place in the run."""
    task_spec = run.spec.by_name.get(command.task)
    retry = task_spec.retry if task_spec is not None else None
    return {
        "workflow_execution": run.row.id,
        "task_name": command.task,
        "task_index": command.index,
        "task_batch": None,
        "retry_count": command.attempt - 1,
        "max_retries": retry.count if retry is not None else 0,
        "next_retry_at": None,
        "timeout_seconds": command.timeout,
        "timed_out": False,
        "duration_ms": None,
        "started_at": None,
        "completed_at": None,
    }


async def _run_inline(
    session: AsyncSession, run: _Run, command: conductor.RunTask, ctx: WorkflowContext
) -> tuple[bool, conductor.Event | None]:
    """Run the task now when its action runs in-process (attune.executor.inline): ``(True, its
    outcome)``, or ``(True, None)`` when it was deferred to a later step; ``(False, None)`` when
    the task must be requested from a worker."""
    if ctx.inline is None:
        return False, None
    action = await _action(session, run, command.action)
    builtin = ctx.inline.builtin(action)
    if action is None or builtin is None:
        if command.index is not None and action is not None:
            await _warn_if_capped(session, run, command, ctx.inline)
        return False, None
    public, revealed = _split_input(run, action, command)
    try:
        outcome = ctx.inline.run(
            action,
            builtin,
            public,
            revealed,
            _task_link(run, command),
            parent=run.parent,
            state_id=run.row.id,
            task=command.task,
            attempt=command.attempt,
        )
    except AttuneError as exc:
        log.warning(
            "workflow execution %s: task %s not started: %s", run.parent.id, command.task, exc.message
        )
        outcome = ExecutionStatus.FAILED.value, {"succeeded": False, "error": exc.message}
    if outcome is None:
        return True, None
    status, result = outcome
    return True, conductor.TaskFinished(task=command.task, index=command.index, status=status, result=result)


async def _warn_if_capped(
    session: AsyncSession, run: _Run, command: conductor.RunTask, inline: inline_tasks.InlineTasks
) -> None:
    record = run.state.tasks.get(command.task) or {}
    count = len(record.get("items") or [])
    task_spec = run.spec.by_name.get(command.task)
    limit = task_spec.concurrency if task_spec is not None else None
    await inline_tasks.warn_if_capped(
        session,
        inline,
        execution_id=run.parent.id,
        state_id=run.row.id,
        task=command.task,
        wanted=min(limit or count, count),
    )


async def _finish(session: AsyncSession, run: _Run, command: conductor.Finish) -> None:
    status = ExecutionStatus(command.status)
    run.row.status = status.value
    run.row.error_message = command.error
    run.row.paused = False
    run.timers.clear()
    await finish_execution(session, run.parent, status, command.result, from_statuses=_PARENT_LIVE)
    log.info("workflow execution %s finished %s", run.parent.id, status.value)


async def _cancel_tasks(
    session: AsyncSession, run: _Run, pairs: Sequence[tuple[str, int | None]], ctx: WorkflowContext
) -> None:
    names = {name for name, _ in pairs}
    wanted = {(name, index) for name, index in pairs}
    query = sa.select(Execution).where(
        Execution.workflow_execution_id == run.row.id,
        Execution.workflow_task_name.in_(sorted(names)),
        Execution.status.in_(list(_LIVE_CHILD)),
    )
    for child in (await session.execute(query)).scalars().all():
        task = child.workflow_task if isinstance(child.workflow_task, dict) else {}
        if (child.workflow_task_name, task.get("task_index")) in wanted:
            await cancel_execution(session, child, ctx)


async def cancel_execution(session: AsyncSession, execution: Execution, ctx: WorkflowContext) -> None:
    """Cancel one non-terminal execution the way the cancel route does (workflows recursively)."""
    status = execution.status
    if status in _BEFORE_WORKER:
        await finish_execution(
            session, execution, ExecutionStatus.CANCELLED, CANCELLED_RESULT, from_statuses=_BEFORE_WORKER
        )
    elif status in _WORKFLOW_ACTIVE and execution.is_workflow and execution.worker is None:
        await cancel_workflow(session, execution, ctx)
    elif status == ExecutionStatus.RUNNING.value and await inquiries.cancel_waiting(session, execution):
        # Waiting on a human answer: no worker to kill, it is cancelled with its inquiry at once.
        pass
    elif status == ExecutionStatus.RUNNING.value:
        if await _move(session, execution, ExecutionStatus.RUNNING, ExecutionStatus.CANCELING):
            if execution.worker is not None:
                enqueue(
                    session,
                    MessageType.EXECUTION_CANCEL,
                    {"execution_id": execution.id, "worker_id": execution.worker},
                    source_service=ctx.source,
                    routing=cancel_routing(execution.worker),
                )


# -- control requests (cancel, pause, resume, rerun) -----------------------------------------------


async def _locked_run(session: AsyncSession, execution: Execution, ctx: WorkflowContext) -> _Run:
    row = await repo.execution_state(session, execution.id, lock=True)
    if row is None:
        raise WorkflowStateError(f"Execution {execution.id} is not a running workflow")
    run = await _load(session, row, ctx)
    if run is None:
        raise WorkflowStateError(f"Execution {execution.id} has no workflow state")
    return run


async def cancel_workflow(session: AsyncSession, execution: Execution, ctx: WorkflowContext) -> None:
    """Cancel a running workflow: the parent becomes ``canceling``, its live children are cancelled
    and the workflow finishes ``cancelled`` once they have reported back."""
    run = await _locked_run(session, execution, ctx)
    if run.row.status in _TERMINAL:
        return
    if execution.status in _WORKFLOW_ACTIVE:
        await _move(session, execution, ExecutionStatus(execution.status), ExecutionStatus.CANCELING)
        run.parent.status = ExecutionStatus.CANCELING.value
    run.row.status = ExecutionStatus.CANCELING.value
    run.timers.clear()
    await _step(session, run, conductor.Cancel(), ctx)


async def pause_workflow(
    session: AsyncSession, execution: Execution, ctx: WorkflowContext
) -> WorkflowExecution:
    """Stop dispatching new tasks; running children finish and are recorded (409 unless running)."""
    run = await _locked_run(session, execution, ctx)
    if run.row.status != ExecutionStatus.RUNNING.value or execution.status != ExecutionStatus.RUNNING.value:
        raise WorkflowStateError(f"Workflow execution {execution.id} is {run.row.status}, not running")
    if run.row.paused or run.row.pause_reason:
        raise WorkflowStateError(f"Workflow execution {execution.id} is already paused")
    run.row.pause_reason = "Paused on request"
    # The execution says so at once; tasks already running still finish and are recorded.
    if not await _move(session, execution, ExecutionStatus.RUNNING, ExecutionStatus.PAUSED):
        raise WorkflowStateError(f"Workflow execution {execution.id} changed meanwhile")
    run.parent.status = ExecutionStatus.PAUSED.value
    await _step(session, run, conductor.Pause(), ctx)
    return run.row


async def resume_workflow(
    session: AsyncSession, execution: Execution, ctx: WorkflowContext
) -> WorkflowExecution:
    """Continue a paused (or pausing) workflow (409 otherwise)."""
    run = await _locked_run(session, execution, ctx)
    if run.row.status != ExecutionStatus.RUNNING.value or not (run.row.paused or run.row.pause_reason):
        raise WorkflowStateError(f"Workflow execution {execution.id} is not paused")
    if execution.status == ExecutionStatus.PAUSED.value:
        await _move(session, execution, ExecutionStatus.PAUSED, ExecutionStatus.RUNNING)
        run.parent.status = ExecutionStatus.RUNNING.value
    run.row.paused = False
    run.row.pause_reason = None
    await _step(session, run, conductor.Resume(), ctx)
    return run.row


async def rerun_workflow(
    session: AsyncSession,
    execution: Execution,
    ctx: WorkflowContext,
    tasks: list[str] | None = None,
    *,
    nested: bool = False,
) -> WorkflowExecution:
    """Resume a ``failed`` workflow from its failed task(s), keeping what succeeded (409 otherwise).

    The same execution goes back to ``running``; its result is cleared until it finishes again.
    A failed task that ran a nested workflow resumes that child in place from its own failed
    tasks rather than starting it afresh. Re-running a nested workflow whose enclosing workflow
    failed re-runs the enclosing one from that task, so every parent resumes when it ends.
    """
    if not nested and execution.workflow_execution_id is not None:
        delegated = await _rerun_through_parent(session, execution, ctx, tasks)
        if delegated is not None:
            return delegated
    run = await _locked_run(session, execution, ctx)
    if execution.status != ExecutionStatus.FAILED.value or run.row.status != ExecutionStatus.FAILED.value:
        raise WorkflowStateError(f"Workflow execution {execution.id} is {execution.status}, not failed")
    if not await _move(session, execution, ExecutionStatus.FAILED, ExecutionStatus.RUNNING, result=None):
        raise WorkflowStateError(f"Workflow execution {execution.id} changed meanwhile")
    run.parent.status, run.parent.result = ExecutionStatus.RUNNING.value, None
    run.row.status = ExecutionStatus.RUNNING.value
    run.row.error_message = None
    run.keys = await _keys_for(session, run.spec, run.parent, ctx)
    rerun = conductor.Rerun(tasks=tasks)
    state, commands = await budget.offload(
        conductor.advance, run.spec, run.state, rerun, engine=ctx.engine, keys=run.keys
    )
    if state.finished:
        wanted = ", ".join(tasks) if tasks else "any"
        raise WorkflowStateError(f"Workflow execution {execution.id} has no failed task to re-run ({wanted})")
    run.state = state
    await _apply(session, run, await _resume_nested(session, run, commands, ctx), ctx)
    await _persist(session, run, ctx)
    return run.row


async def _rerun_through_parent(
    session: AsyncSession, execution: Execution, ctx: WorkflowContext, tasks: list[str] | None
) -> WorkflowExecution | None:
    """Re-run the failed workflow enclosing ``execution`` from its task; None when it is not failed.

    The enclosing run's lock is taken first, as every step of that run does.
    """
    assert execution.workflow_execution_id is not None
    outer_row = await repo.lock_state(session, execution.workflow_execution_id)
    if outer_row is None or outer_row.status in (
        ExecutionStatus.COMPLETED.value,
        ExecutionStatus.CANCELLED.value,
    ):
        return None  # the enclosing run is over for good: this one re-runs on its own
    if outer_row.status != ExecutionStatus.FAILED.value:
        raise WorkflowStateError(
            f"Workflow execution {execution.id} belongs to workflow execution {outer_row.execution}, "
            "which is still running: re-run it once that one has ended"
        )
    outer = await session.get(Execution, outer_row.execution)
    task = execution.workflow_task if isinstance(execution.workflow_task, dict) else {}
    if outer is None or outer.status != ExecutionStatus.FAILED.value or not task.get("task_name"):
        return None
    ctx.rerun_tasks[execution.id] = tasks
    await rerun_workflow(session, outer, ctx, [str(task["task_name"])])
    if execution.status != ExecutionStatus.RUNNING.value:
        raise WorkflowStateError(
            f"Workflow execution {execution.id} is not the latest run of task "
            f"'{task['task_name']}' of workflow execution {outer.id}"
        )
    row = await repo.execution_state(session, execution.id)
    assert row is not None
    return row


async def _resume_nested(
    session: AsyncSession, run: _Run, commands: Sequence[conductor.Command], ctx: WorkflowContext
) -> list[conductor.Command]:
    """Carry out re-run RunTasks whose last child is a failed nested workflow by resuming it.

    Returns the commands left for :func:`_apply`.
    """
    wanted = {(c.task, c.index) for c in commands if isinstance(c, conductor.RunTask)}
    if not wanted:
        return list(commands)
    query = (
        sa.select(Execution)
        .where(
            Execution.workflow_execution_id == run.row.id,
            Execution.workflow_task_name.in_(sorted({name for name, _ in wanted})),
        )
        .order_by(Execution.id)
    )
    latest: dict[tuple[str | None, Any], Execution] = {}
    for child in (await session.execute(query)).scalars().all():
        task = child.workflow_task if isinstance(child.workflow_task, dict) else {}
        latest[(child.workflow_task_name, task.get("task_index"))] = child
    left: list[conductor.Command] = []
    for command in commands:
        resumable = (
            latest.get((command.task, command.index)) if isinstance(command, conductor.RunTask) else None
        )
        if (
            isinstance(command, conductor.RunTask)
            and resumable is not None
            and resumable.is_workflow
            and resumable.status == ExecutionStatus.FAILED.value
        ):
            await rerun_workflow(
                session, resumable, ctx, ctx.rerun_tasks.pop(resumable.id, None), nested=True
            )
            resumable.workflow_task = {
                **(resumable.workflow_task or {}),
                "counted": False,
                "completed_at": None,
                "retry_count": command.attempt - 1,
            }
            continue
        left.append(command)
    return left


# -- the executor-side engine ------------------------------------------------------------------------


def _due(timer: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(str(timer["due"]))


class WorkflowEngine:
    """The executor's workflow component: starts runs, advances them, fires their timers.

    Timers: every pass lists running workflow runs with their ``updated`` stamp and re-reads the
    timers of runs changed by someone else (the API, another executor); runs this engine wrote
    itself are known already. Due timers fire in their own transaction.
    """

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._specs = SpecCache()
        self._engine = TemplateEngine()
        self._known: dict[int, tuple[datetime, list[dict[str, Any]]]] = {}
        self._states = StateCache()
        #: Deferred in-process children a background step of this engine is about to run.
        self._deferring: set[int] = set()
        self._warned: LruCache[tuple[int, str], bool] = LruCache(1024)
        #: Completions waiting for the step of their run, and the runs being stepped.
        self._finishing: dict[int, list[tuple[int, asyncio.Future[None]]]] = {}
        self._stepping: set[int] = set()
        #: In-process children this engine counted already: their completion needs no query.
        self._counted: LruCache[int, bool] = LruCache(COUNTED_MEMORY)
        self._drains: set[asyncio.Task[None]] = set()
        #: Schedules an execution on a worker (the scheduler sets it): deferred tasks whose own
        #: step failed go there.
        self.schedule_fallback: Callable[[int], Awaitable[None]] | None = None

    def context(self) -> WorkflowContext:
        """A fresh command context sharing this engine's caches."""
        settings = self._runtime.settings
        inline = inline_tasks.InlineTasks(
            box=self._runtime.secrets,
            source=SOURCE,
            budget=inline_tasks.BUDGET,
            enabled=settings.worker.in_process_actions,
            heartbeat_interval=settings.worker.heartbeat_interval,
            alive=self._runtime.local_workers,
            warned=self._warned,
        )
        return WorkflowContext(
            box=self._runtime.secrets,
            engine=self._engine,
            specs=self._specs,
            states=self._states,
            inline=inline,
            clock=self._runtime.clock,
        )

    def deferring(self, execution_id: int) -> bool:
        """True when this engine runs execution ``execution_id`` itself shortly (the scheduler
        leaves it alone; after a crash it is recovered like any requested execution)."""
        return execution_id in self._deferring

    def _drain(self, ctx: WorkflowContext) -> None:
        """After a commit: run the children that step deferred, in a step of their own."""
        if ctx.inline is None or not ctx.inline.deferred_ids:
            return
        for state_id, ids in ctx.inline.deferred_ids.items():
            self._deferring.update(ids)
            task = asyncio.create_task(
                self._run_deferred(state_id, ids), name=f"workflow-{state_id}-deferred"
            )
            self._drains.add(task)
            task.add_done_callback(self._drains.discard)
        ctx.inline.deferred_ids = {}

    async def _run_deferred(self, state_id: int, ids: list[int]) -> None:
        try:
            ctx = self.context()
            async with self._runtime.db.transaction() as session:
                await advance_deferred(session, state_id, ids, ctx)
            self._remember(ctx)
        except Exception:
            # They stay requested: the scheduler hands them to a worker instead.
            log.exception("running deferred tasks of workflow run %s failed", state_id)
            self._deferring.difference_update(ids)
            if self.schedule_fallback is not None:
                for execution_id in ids:
                    await self.schedule_fallback(execution_id)
            return
        self._deferring.difference_update(ids)

    def _remember(self, ctx: WorkflowContext) -> None:
        """Called once ``ctx``'s transaction has committed."""
        if ctx.inline is not None:
            for execution_id in ctx.inline.counted_ids:
                self._counted.put(execution_id, True)
            ctx.inline.counted_ids = []
        self._drain(ctx)
        for written in ctx.written:
            self._known[written.state_id] = (written.updated, written.timers)
            if written.state.finished:
                self._states.forget(written.state_id)
            else:
                self._states.put(written.state_id, written.stamp, written.state)

    async def start(self, execution_id: int) -> None:
        """Start the workflow run of execution ``execution_id`` (scheduler hand-off)."""
        ctx = self.context()
        async with self._runtime.db.transaction() as session:
            execution = await session.get(Execution, execution_id)
            if execution is None:
                return
            action = await session.get(Action, execution.action) if execution.action is not None else None
            if action is None:
                action = await session.scalar(sa.select(Action).where(Action.ref == execution.action_ref))
            if action is None:
                return
            await start_workflow(session, execution, action, ctx)
        self._remember(ctx)

    async def child_finished(self, execution_id: int) -> None:
        """Advance the workflow run a finished execution belongs to (no-op for other executions)."""
        if self._counted.pop(execution_id):
            return  # an in-process task counted in the step that ran it
        async with self._runtime.db.session() as session:
            found = (
                await session.execute(
                    sa.select(Execution.workflow_execution_id, Execution.workflow_task).where(
                        Execution.id == execution_id
                    )
                )
            ).one_or_none()
        state_id, task = found if found is not None else (None, None)
        if state_id is None or (isinstance(task, dict) and task.get("counted")):
            # Not a workflow child, or counted already (an in-process task is counted in the step
            # that ran it): no write transaction (and no SQLite write lock) needed.
            return
        # Children of one run that finish meanwhile are counted together: one transaction, one
        # load and one write of the run per batch instead of one per child.
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._finishing.setdefault(state_id, []).append((execution_id, done))
        if state_id not in self._stepping:
            self._stepping.add(state_id)
            try:
                while batch := self._finishing.pop(state_id, None):
                    await self._count_batch(state_id, batch)
            finally:
                self._stepping.discard(state_id)
                # Interrupted (shutdown): whoever still waits fails and is delivered again.
                for _, waiting in self._finishing.pop(state_id, []):
                    if not waiting.done():
                        waiting.set_exception(RuntimeError(f"the step of workflow run {state_id} stopped"))
        await done

    async def _count_batch(self, state_id: int, batch: list[tuple[int, asyncio.Future[None]]]) -> None:
        ctx = self.context()
        try:
            async with self._runtime.db.transaction() as session:
                await advance_children(session, state_id, [execution_id for execution_id, _ in batch], ctx)
        except BaseException as exc:
            # Every completion of the batch fails and is delivered again.
            for _, done in batch:
                if not done.done():
                    done.set_exception(exc if isinstance(exc, Exception) else RuntimeError("interrupted"))
            if not isinstance(exc, Exception):
                raise
            return
        self._remember(ctx)
        for _, done in batch:
            if not done.done():
                done.set_result(None)

    async def sweep_timers(self) -> int:
        """One timer-loop pass; returns how many timers fired."""
        async with self._runtime.db.session() as session:
            running = await repo.running_states(session)
            stale = [sid for sid, updated in running if self._known.get(sid, (None, []))[0] != updated]
            if stale:
                rows = await session.execute(
                    sa.select(
                        WorkflowExecution.id, WorkflowExecution.updated, WorkflowExecution.variables
                    ).where(WorkflowExecution.id.in_(stale))
                )
                for sid, updated, variables in rows.all():
                    timers = (variables or {}).get(TIMERS_KEY) or [] if isinstance(variables, dict) else []
                    self._known[sid] = (updated, [t for t in timers if isinstance(t, dict)])
        live = {sid for sid, _ in running}
        for sid in list(self._known):
            if sid not in live:
                del self._known[sid]
        now = self._runtime.clock.now()
        fired = 0
        for sid, (_, timers) in list(self._known.items()):
            for timer in sorted(timers, key=_due):
                if _due(timer) > now:
                    break
                ctx = self.context()
                async with self._runtime.db.transaction() as session:
                    if await fire_timer(session, sid, timer, ctx):
                        fired += 1
                self._remember(ctx)
                if not ctx.written:
                    # Already fired elsewhere: forget it so the next pass re-reads the row.
                    self._known.pop(sid, None)
                    break
        return fired

    @property
    def timer_interval(self) -> float:
        """Seconds between two timer passes."""
        return TIMER_INTERVAL
