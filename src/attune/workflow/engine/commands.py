"""Carrying out the conductor's commands in the step's transaction (docs/workflows.md "Execution").

* ``RunTask`` → a child execution through :func:`attune.db.repos.executions.request_execution`
  (``parent`` = the workflow's execution, enforcement and env vars copied) carrying
  ``workflow_task`` and the shadow columns, or run at once in-process
  (:mod:`attune.workflow.engine.inline`). A child that cannot be created (unknown action,
  invalid parameters) is reported straight back as a failed task.
* ``StartTimer`` → a due time persisted in the state; the engine's timer loop fires it.
* ``CancelTasks`` → the children are cancelled like the cancel route does (before a worker has
  them: ``cancelled`` at once; running: ``canceling`` + ``ExecutionCancel``; a nested workflow:
  cancelled recursively).
* ``Finish`` → the parent execution ends through ``finish_execution`` (which stages
  ``ExecutionCompleted``, so an enclosing workflow advances and rule slots are released).
* ``Paused`` → ``workflow_execution.paused = true`` once no task runs any more.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from attune.db.models import Action, Execution
from attune.db.outbox import enqueue
from attune.db.repos import executions as runs
from attune.db.repos import workflows as repo
from attune.domain import budget, keyrefs
from attune.domain.enums import ExecutionStatus
from attune.domain.params import secret_names
from attune.errors import AttuneError
from attune.messaging.messages import MessageType, cancel_routing
from attune.operations import inquiries
from attune.operations.executions import finish_execution
from attune.workflow import conductor
from attune.workflow.engine import control, store
from attune.workflow.engine import inline as inline_tasks
from attune.workflow.engine.store import (
    BEFORE_WORKER,
    CANCELLED_RESULT,
    LIVE_CHILD,
    PARENT_LIVE,
    WORKFLOW_ACTIVE,
    Run,
    WorkflowContext,
    keys_for,
    move,
)

log = logging.getLogger(__name__)

#: Seconds of conductor work one hop to the render pool carries at most (then the next hop):
#: each event has its own budget, so a batch must not approach the pool's wait for one render.
FEED_SECONDS = 0.2


async def step(session: AsyncSession, run: Run, event: conductor.Event, ctx: WorkflowContext) -> None:
    """Feed ``event`` to the conductor, carry out its commands and persist the run."""
    run.keys = await keys_for(session, run.spec, run.parent, ctx)
    commands = await budget.offload(conduct, run, event, ctx)
    await apply(session, run, commands, ctx)
    await store.persist(session, run, ctx)


def conduct(run: Run, event: conductor.Event, ctx: WorkflowContext) -> list[conductor.Command]:
    """:func:`conductor.advance` within the transaction's room (:func:`room_of`): ``run.state``
    moves on; returns the commands, whose ``RunTask`` are counted (:func:`count_issued`)."""
    run.state, commands = conductor.advance(
        run.spec, run.state, event, engine=ctx.engine, keys=run.keys, room=room_of(ctx)
    )
    count_issued(ctx, commands)
    return commands


def room_of(ctx: WorkflowContext) -> int | None:
    """How many tasks a step may still start in this transaction (None: no in-process tasks, no
    limit; :meth:`InlineTasks.room`)."""
    return ctx.inline.room() if ctx.inline is not None else None


def count_issued(ctx: WorkflowContext, commands: Sequence[conductor.Command]) -> None:
    """Count the ``RunTask`` among ``commands`` against the transaction's room."""
    if ctx.inline is not None:
        ctx.inline.issued += sum(isinstance(command, conductor.RunTask) for command in commands)


async def apply(
    session: AsyncSession, run: Run, commands: Sequence[conductor.Command], ctx: WorkflowContext
) -> None:
    """Carry out ``commands``; failures to create a child are fed back as failed tasks.

    Outcomes fed back (in-process tasks, children that could not be created) wait until the
    queue's next command is not a ``RunTask`` or the queue is empty, then go to the conductor
    together in their order (:func:`feed`), so a ``with_items`` of in-process tasks costs one
    hop to the render pool per batch rather than per item. No command reads the conductor's
    state, so the order of the conductor's events is the same as feeding each outcome at once.
    With nothing else queued, in-process tasks the outcomes start run in that same hop
    (:func:`run_ready_task`): a chain of them costs one hop, not one per task.
    """
    queue: deque[conductor.Command] = deque(commands)
    outcomes: list[conductor.Event] = []
    while queue or outcomes:
        if outcomes and (not queue or not isinstance(queue[0], conductor.RunTask)):
            queue.extend(await feed(run, outcomes, ctx, run_ready=not queue))
            continue
        command = queue.popleft()
        feedback: conductor.Event | None = None
        if isinstance(command, conductor.RunTask):
            handled, feedback = await run_inline(session, run, command, ctx)
            if not handled:
                feedback = await run_task(session, run, command, ctx)
        elif isinstance(command, conductor.StartTimer):
            due = ctx.clock.now() + timedelta(seconds=max(float(command.seconds), 0.0))
            run.timers.append(
                {"task": command.task, "index": command.index, "kind": command.kind, "due": due.isoformat()}
            )
        elif isinstance(command, conductor.CancelTasks):
            await cancel_tasks(session, run, command.tasks, ctx)
        elif isinstance(command, conductor.Finish):
            await finish_parent(session, run, command)
        elif isinstance(command, conductor.Paused):
            run.row.paused = True
            run.row.pause_reason = run.row.pause_reason or "Paused on request"
        if feedback is not None:
            outcomes.append(feedback)
    if ctx.inline is not None:
        await ctx.inline.flush(session)


async def feed(
    run: Run, events: list[conductor.Event], ctx: WorkflowContext, *, run_ready: bool = False
) -> list[conductor.Command]:
    """Feed ``events`` to the conductor in order, in as few hops to the render pool as
    :data:`FEED_SECONDS` allows; ``events`` is emptied. Returns the commands left to carry out,
    in order.

    ``run_ready`` (the caller has no other command queued): a ``RunTask`` of an in-process action
    already known to the run is run right there too (:func:`run_ready_task`) and its outcome fed
    next, so a chain of such tasks is one hop, not one per task.
    """
    if run_ready and ctx.inline is not None:
        ctx.inline.prepare(run.parent)  # the parent's ORM attributes are read here, not in a thread
    commands: list[conductor.Command] = []
    while events:
        run.state, more, left = await budget.offload(advance_many, run, events, ctx, run_ready=run_ready)
        commands.extend(more)
        events[:] = left
    return commands


def advance_many(
    run: Run, events: Sequence[conductor.Event], ctx: WorkflowContext, *, run_ready: bool
) -> tuple[conductor.WorkflowState, list[conductor.Command], list[conductor.Event]]:
    """:func:`conductor.advance` for ``events`` in order (in the render pool), each under a
    budget of its own as if offloaded alone, running ready in-process tasks (``run_ready``) and
    feeding their outcomes after. Stops after :data:`FEED_SECONDS` so a batch stays well within
    the pool's wait for one render. Returns the state, the commands to carry out and the events
    not fed yet (fewer than given)."""
    started = time.monotonic()
    running = budget.current()
    pending: deque[conductor.Event] = deque(events)
    commands: list[conductor.Command] = []
    while pending:
        if running is not None:
            running.deadline = time.monotonic() + running.limits.timeout
            running.built = 0
        for command in conduct(run, pending.popleft(), ctx):
            outcome = run_ready_task(run, command, ctx) if run_ready else None
            if outcome is None:
                commands.append(command)
            else:
                pending.append(outcome)
        if time.monotonic() - started >= FEED_SECONDS:
            break
    return run.state, commands, list(pending)


def run_ready_task(run: Run, command: conductor.Command, ctx: WorkflowContext) -> conductor.Event | None:
    """Run ``command`` now if it is a ``RunTask`` of an in-process action the run has looked up
    already (no query needed): its outcome; None when :func:`apply` must carry it out."""
    inline = ctx.inline
    if inline is None or not isinstance(command, conductor.RunTask):
        return None
    action = run.actions.get(command.action)
    builtin = inline.builtin(action) if action is not None else None
    if action is None or builtin is None:
        return None
    return run_now(run, command, action, builtin, inline)


async def action_of(session: AsyncSession, run: Run, ref: str) -> Action | None:
    if ref not in run.actions:
        run.actions[ref] = await repo.action_by_ref(session, ref)
    return run.actions[ref]


async def run_task(
    session: AsyncSession, run: Run, command: conductor.RunTask, ctx: WorkflowContext
) -> conductor.Event | None:
    action = await action_of(session, run, command.action)
    failure: str | None = None
    if action is None:
        failure = f"Action '{command.action}' not found"
    else:
        parent = run.parent
        public, revealed = split_input(run, action, command)
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
            child.workflow_task = task_link(run, command)
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


def split_input(
    run: Run, action: Action, command: conductor.RunTask
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the task's input as stored, the decrypted values that go to ``secret_params`` only)."""
    declared = declared_secrets(run, action)
    texts = run.keys.revealed if run.keys is not None else []
    # Decrypted keys (``decrypt_kv``, secret parameters) are stored only as secret parameters.
    public, revealed = keyrefs.split_revealed(command.input, declared, texts)
    for name in declared & set(revealed):
        public[name] = revealed.pop(name)
    return public, revealed


def declared_secrets(run: Run, action: Action) -> set[str]:
    """The secret parameter names of ``action``, derived once per step (``Run.secrets``)."""
    declared = run.secrets.get(action.ref)
    if declared is None:
        declared = run.secrets[action.ref] = secret_names(runs.flat_schema(action.param_schema))
    return declared


def task_link(run: Run, command: conductor.RunTask) -> dict[str, Any]:
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


async def run_inline(
    session: AsyncSession, run: Run, command: conductor.RunTask, ctx: WorkflowContext
) -> tuple[bool, conductor.Event | None]:
    """Run the task now when its action runs in-process (attune.workflow.engine.inline): ``(True, its
    outcome)``; ``(False, None)`` when the task must be requested from a worker."""
    if ctx.inline is None:
        return False, None
    action = await action_of(session, run, command.action)
    builtin = ctx.inline.builtin(action)
    if action is None or builtin is None:
        if command.index is not None and action is not None:
            await warn_if_capped(session, run, command, ctx.inline)
        return False, None
    return True, run_now(run, command, action, builtin, ctx.inline)


def run_now(
    run: Run, command: conductor.RunTask, action: Action, builtin: str, inline: inline_tasks.InlineTasks
) -> conductor.Event:
    """Run an in-process task (attune.workflow.engine.inline): its outcome."""
    public, revealed = split_input(run, action, command)
    try:
        outcome = inline.run(
            action,
            builtin,
            public,
            revealed,
            task_link(run, command),
            parent=run.parent,
            state_id=run.row.id,
            task=command.task,
            attempt=command.attempt,
            declared=declared_secrets(run, action),
        )
    except AttuneError as exc:
        log.warning(
            "workflow execution %s: task %s not started: %s", run.parent.id, command.task, exc.message
        )
        outcome = ExecutionStatus.FAILED.value, {"succeeded": False, "error": exc.message}
    status, result = outcome
    return conductor.TaskFinished(task=command.task, index=command.index, status=status, result=result)


async def warn_if_capped(
    session: AsyncSession, run: Run, command: conductor.RunTask, inline: inline_tasks.InlineTasks
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


async def finish_parent(session: AsyncSession, run: Run, command: conductor.Finish) -> None:
    """The run is over: end the workflow's own execution with the conductor's result."""
    status = ExecutionStatus(command.status)
    run.row.status = status.value
    run.row.error_message = command.error
    run.row.paused = False
    run.timers.clear()
    await finish_execution(session, run.parent, status, command.result, from_statuses=PARENT_LIVE)
    log.info("workflow execution %s finished %s", run.parent.id, status.value)


async def cancel_tasks(
    session: AsyncSession, run: Run, pairs: Sequence[tuple[str, int | None]], ctx: WorkflowContext
) -> None:
    """Cancel the live children running these (task, index) pairs."""
    names = {name for name, _ in pairs}
    wanted = {(name, index) for name, index in pairs}
    for child in await repo.task_children(session, run.row.id, sorted(names), LIVE_CHILD):
        task = child.workflow_task if isinstance(child.workflow_task, dict) else {}
        if (child.workflow_task_name, task.get("task_index")) in wanted:
            await cancel_execution(session, child, ctx)


async def cancel_execution(session: AsyncSession, execution: Execution, ctx: WorkflowContext) -> None:
    """Cancel one non-terminal execution the way the cancel route does (workflows recursively)."""
    status = execution.status
    if status in BEFORE_WORKER:
        if await finish_execution(
            session, execution, ExecutionStatus.CANCELLED, CANCELLED_RESULT, from_statuses=BEFORE_WORKER
        ):
            return
        # Its worker claimed it since it was read (the compare-and-set matched nothing): cancel the
        # run it is now, or it would run to its end while the workflow waits (issue #11).
        current = await runs.reload(session, execution.id)
        if current is not None and current.status not in BEFORE_WORKER:
            await cancel_execution(session, current, ctx)
    elif status in WORKFLOW_ACTIVE and execution.is_workflow and execution.worker is None:
        await control.cancel_workflow(session, execution, ctx)
    elif status == ExecutionStatus.RUNNING.value and await inquiries.cancel_waiting(session, execution):
        # Waiting on a human answer: no worker to kill, it is cancelled with its inquiry at once.
        pass
    elif status == ExecutionStatus.RUNNING.value:
        if await move(session, execution, ExecutionStatus.RUNNING, ExecutionStatus.CANCELING):
            if execution.worker is not None:
                enqueue(
                    session,
                    MessageType.EXECUTION_CANCEL,
                    {"execution_id": execution.id, "worker_id": execution.worker},
                    source_service=ctx.source,
                    routing=cancel_routing(execution.worker),
                )
