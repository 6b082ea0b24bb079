"""The workflow engine's run state: caches, loading and persisting a run (docs/workflows.md "Execution").

The whole conductor state lives in ``workflow_execution.variables`` under :data:`STATE_KEY`
(timers under :data:`TIMERS_KEY`); the list columns mirror the task statuses for readers.
Steps of one workflow are serialised by a row lock (PostgreSQL) or SQLite's ``BEGIN IMMEDIATE``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import flag_modified, set_committed_value

from attune.clock import Clock, SystemClock
from attune.db.models import Action, Execution, WorkflowDefinition, WorkflowExecution
from attune.db.repos import executions as runs
from attune.db.repos import workflows as repo
from attune.db.types import utcnow
from attune.domain import keyrefs, params
from attune.domain.crypto import SecretBox
from attune.domain.enums import TERMINAL_EXECUTION_STATUSES, ExecutionStatus
from attune.domain.templates import TemplateEngine
from attune.errors import Conflict
from attune.lru import LruCache
from attune.operations import template_keys
from attune.operations.executions import stage_status_changed
from attune.workflow import conductor
from attune.workflow.engine import inline as inline_tasks
from attune.workflow.engine.items import attach_items, stored_record, write_items
from attune.workflow.spec import WorkflowSpec, WorkflowValidationError, parse_workflow

SOURCE = "executor"
STATE_KEY = "__state__"
TIMERS_KEY = "__timers__"
#: A fresh token per written state: a cached state is used only if the row still carries its token.
STAMP_KEY = "__stamp__"
#: In the persisted state: ``parameters`` are those of the workflow's execution (with defaults).
PARAMETERS_KEY = "__parameters_from_execution__"

TERMINAL = frozenset(s.value for s in TERMINAL_EXECUTION_STATUSES)
PARENT_LIVE = (
    ExecutionStatus.RUNNING.value,
    ExecutionStatus.CANCELING.value,
    ExecutionStatus.PAUSED.value,
)
#: A workflow's own execution while it may still be cancelled as a workflow.
WORKFLOW_ACTIVE = (ExecutionStatus.RUNNING.value, ExecutionStatus.PAUSED.value)
BEFORE_WORKER = (
    ExecutionStatus.REQUESTED.value,
    ExecutionStatus.SCHEDULING.value,
    ExecutionStatus.SCHEDULED.value,
)
LIVE_CHILD = (*BEFORE_WORKER, ExecutionStatus.RUNNING.value, ExecutionStatus.CANCELING.value)
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
class Run:
    """One workflow run loaded for a step."""

    row: WorkflowExecution
    parent: Execution
    spec: WorkflowSpec
    state: conductor.WorkflowState
    timers: list[dict[str, Any]]
    actions: dict[str, Action | None] = field(default_factory=dict)
    #: Secret parameter names per action ref, for this step (one per with_items item otherwise).
    secrets: dict[str, set[str]] = field(default_factory=dict)
    #: Keys the workflow's templates name, loaded for this step (None: it names none).
    keys: keyrefs.KeyNamespace | None = None


async def keys_for(
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


async def move(
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
    if not await repo.move_execution(
        session, execution.id, source.value, target.value, updated=now, **values
    ):
        return False
    stage_status_changed(session, execution, source.value, target.value)
    # What the UPDATE wrote, as already persisted: set as plain attributes the flush would write
    # them a second time, with a second history row and notification of the same change.
    set_committed_value(execution, "status", target.value)
    set_committed_value(execution, "updated", now)
    for name, value in values.items():
        set_committed_value(execution, name, value)
    return True


async def load(session: AsyncSession, row: WorkflowExecution, ctx: WorkflowContext) -> Run | None:
    """Run ``row`` ready for a step; None when its execution, definition or state is gone."""
    parent = await repo.step_parent(session, row.execution)
    version = await repo.definition_version(session, row.workflow_def)
    if parent is None or version is None:
        return None
    ref, updated = version
    variables = row.variables if isinstance(row.variables, dict) else {}
    raw_state = variables.get(STATE_KEY)
    if not isinstance(raw_state, dict):
        return None
    spec = ctx.specs.cached(row.workflow_def, updated)
    if spec is None:
        definition = await session.get(WorkflowDefinition, row.workflow_def)
        try:
            spec = ctx.specs.get(definition) if definition is not None else None
        except WorkflowValidationError:
            spec = None
        if spec is None:
            # The definition was edited into something invalid while this run was going; the
            # normalised document the run started with is still good.
            graph = await repo.task_graph(session, row.id)
            spec = parse_workflow(graph or {}, ref=ref, max_tasks=STORED_MAX_TASKS)
    timers = [t for t in variables.get(TIMERS_KEY) or [] if isinstance(t, dict)]
    state = ctx.states.take(row.id, variables.get(STAMP_KEY)) if ctx.states is not None else None
    if state is None:
        state = conductor.WorkflowState.from_dict(raw_state)
        if raw_state.get(PARAMETERS_KEY):
            state.parameters = await load_parameters(session, row.execution, spec, ctx)
        await attach_items(session, row.id, state)
    state.journal.clear()
    return Run(row=row, parent=parent, spec=spec, state=state, timers=timers)


async def load_parameters(
    session: AsyncSession, execution_id: int, spec: WorkflowSpec, ctx: WorkflowContext
) -> dict[str, Any]:
    """The workflow's parameters as :func:`conductor.start` filled them, from its execution."""
    config, secret_params = await repo.stored_parameters(session, execution_id)
    return params.apply_defaults(runs.parameters_from(config, secret_params, ctx.box), spec.parameters)


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


async def persist(session: AsyncSession, run: Run, ctx: WorkflowContext) -> None:
    """Write the run's state (and its changed items) in the step's transaction.

    While tasks of the run wait for room (:func:`conductor.held`), its deferred timer is set a
    grace ahead (the timer loop continues the run if no later step does) and the run is marked
    to be continued after the commit; else the timer goes (attune.workflow.engine.inline)."""
    row = run.row
    waiting = conductor.held(run.spec, run.state)
    inline_tasks.set_deferred_timer(run.timers, ctx.clock.now() if waiting else None)
    if waiting and ctx.inline is not None:
        ctx.inline.held.add(row.id)
    await write_items(session, row.id, run.state)
    lists = task_lists(run.state)
    core = run.state.to_dict()
    core["tasks"] = {name: stored_record(record) for name, record in run.state.tasks.items()}
    # Rebuilt from the execution when needed: never copied into every step's write (nor, for
    # secret parameters, stored in clear).
    core["parameters"] = {}
    core[PARAMETERS_KEY] = True
    stamp = uuid.uuid4().hex
    row.variables = {STATE_KEY: core, TIMERS_KEY: list(run.timers), STAMP_KEY: stamp}
    # The conductor mutates nested lists it shares with the loaded value: always write the column.
    flag_modified(row, "variables")
    row.current_tasks = [] if row.status in TERMINAL else lists["current"]
    row.completed_tasks = lists["completed"]
    row.failed_tasks = lists["failed"]
    row.skipped_tasks = lists["skipped"]
    row.updated = utcnow()
    ctx.written.append(Written(row.id, row.updated, list(run.timers), stamp, run.state))


async def locked_run(session: AsyncSession, execution: Execution, ctx: WorkflowContext) -> Run:
    """The run of workflow execution ``execution``, locked for a control request (409 if none)."""
    row = await repo.execution_state(session, execution.id, lock=True)
    if row is None:
        raise WorkflowStateError(f"Execution {execution.id} is not a running workflow")
    run = await load(session, row, ctx)
    if run is None:
        raise WorkflowStateError(f"Execution {execution.id} has no workflow state")
    return run
