"""Starting a workflow run and advancing it: a child finished, a timer fired, tasks held back by a
step's room continue (docs/workflows.md "Execution").

Each function works in the caller's transaction, so the state, the child executions and the
staged messages commit together. A child is counted once: its ``workflow_task.counted`` flag is
set in the step that counts it, so a redelivered ``ExecutionCompleted`` changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from attune.db.models import Action, Execution, WorkflowDefinition
from attune.db.repos import executions as runs
from attune.db.repos import workflows as repo
from attune.db.types import utcnow
from attune.domain import budget
from attune.domain.enums import ExecutionStatus
from attune.operations.executions import finish_execution
from attune.workflow import conductor
from attune.workflow.engine import inline as inline_tasks
from attune.workflow.engine import store
from attune.workflow.engine.commands import apply, conduct, count_issued, room_of, step
from attune.workflow.engine.store import TERMINAL, Run, WorkflowContext, keys_for, load, move
from attune.workflow.spec import WorkflowSpec, WorkflowValidationError, to_document

log = logging.getLogger(__name__)


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
    started = await move(
        session, execution, ExecutionStatus.REQUESTED, ExecutionStatus.RUNNING, now, started_at=now
    )
    if not started:
        return False
    parameters = runs.full_parameters(execution, ctx.box)
    keys = await keys_for(session, spec, execution, ctx)
    try:
        state, commands = await budget.offload(
            conductor.start, spec, parameters, engine=ctx.engine, keys=keys, room=room_of(ctx)
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
    graph = {**to_document(spec), "entry_points": spec.entry_points(), "inbound_edges": spec.inbound}
    count_issued(ctx, commands)
    row = await repo.create_state(session, execution.id, definition.id, graph)
    run = Run(row=row, parent=execution, spec=spec, state=state, timers=[], keys=keys)
    await apply(session, run, commands, ctx)
    await store.persist(session, run, ctx)
    log.info("workflow %s started as execution %s", definition.ref, execution.id)
    return True


def count(child: Execution) -> conductor.TaskFinished | None:
    """Mark a finished, not yet counted child counted; the event that tells its run (else None)."""
    task = child.workflow_task if isinstance(child.workflow_task, dict) else None
    if task is None or task.get("counted") or child.status not in TERMINAL:
        return None
    child.workflow_task = {
        **task,
        "counted": True,
        "completed_at": utcnow().isoformat(),
        "timed_out": child.status == ExecutionStatus.TIMEOUT.value,
    }
    return conductor.TaskFinished(
        task=str(task.get("task_name")),
        index=task.get("task_index"),
        status=task_status(child),
        result=child.result,
    )


def task_status(child: Execution) -> str:
    """A finished child's outcome as the conductor knows it (any other end is a failure)."""
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
        state_id, _ = await repo.child_link(session, child_id)
    if state_id is None:
        return False
    row = await repo.lock_state(session, state_id)
    if row is None or row.status in TERMINAL:
        return False
    (child,) = await repo.fresh_executions(session, [child_id])
    event = count(child)
    if event is None:
        return False
    run = await load(session, row, ctx)
    if run is None:
        return False
    await step(session, run, event, ctx)
    return True


async def advance_children(
    session: AsyncSession, state_id: int, child_ids: Sequence[int], ctx: WorkflowContext
) -> int:
    """Count the finished children ``child_ids`` of run ``state_id`` in one step: the run is
    loaded and written once for the whole batch (each child still counted once). Returns how
    many were counted."""
    row = await repo.lock_state(session, state_id)
    if row is None or row.status in TERMINAL:
        return 0
    events: list[conductor.Event] = []
    for child in await repo.fresh_executions(session, child_ids):
        if child.workflow_execution_id != state_id:
            continue
        finished = count(child)
        if finished is not None:
            events.append(finished)
    if not events:
        return 0
    run = await load(session, row, ctx)
    if run is None:
        return 0
    run.keys = await keys_for(session, run.spec, run.parent, ctx)
    for event in events:
        await apply(session, run, conduct(run, event, ctx), ctx)
    await store.persist(session, run, ctx)
    return len(events)


async def _with_pending_timer(
    session: AsyncSession, state_id: int, timer: dict[str, Any], ctx: WorkflowContext
) -> Run | None:
    """Run ``state_id``, locked, if it is still going and ``timer`` is still pending."""
    row = await repo.lock_state(session, state_id)
    if row is None or row.status in TERMINAL:
        return None
    run = await load(session, row, ctx)
    return run if run is not None and timer in run.timers else None


async def fire_timer(
    session: AsyncSession, state_id: int, timer: dict[str, Any], ctx: WorkflowContext
) -> bool:
    """Fire one due timer of run ``state_id`` (if it is still pending). The deferred timer
    continues the run's held tasks: no step did for a grace (the process that held them stopped)."""
    run = await _with_pending_timer(session, state_id, timer, ctx)
    if run is None:
        return False
    run.timers.remove(timer)
    event: conductor.Event
    if inline_tasks.is_deferred_timer(timer):
        log.warning("workflow run %s: continuing the tasks a stopped step held back", state_id)
        event = conductor.Continue()
    else:
        event = conductor.TimerFired(task=timer["task"], index=timer.get("index"), kind=timer["kind"])
    await step(session, run, event, ctx)
    return True


async def continue_run(session: AsyncSession, state_id: int, ctx: WorkflowContext) -> bool:
    """Start what the last step of run ``state_id`` held back for lack of room (one transaction
    of at most the room's tasks; attune.workflow.engine.inline). False when there is nothing to do."""
    row = await repo.lock_state(session, state_id)
    if row is None or row.status in TERMINAL:
        return False
    run = await load(session, row, ctx)
    if run is None or not conductor.held(run.spec, run.state):
        return False
    await step(session, run, conductor.Continue(), ctx)
    return True
