"""Re-running a failed workflow from its failed tasks, nested workflows included
(docs/workflows.md "Control").

A failed task that ran a nested workflow resumes that child in place; re-running a nested
workflow whose enclosing one failed re-runs the enclosing one from that task.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from attune.db.models import Execution, WorkflowExecution
from attune.db.repos import workflows as repo
from attune.domain import budget
from attune.domain.enums import ExecutionStatus
from attune.workflow import conductor
from attune.workflow.engine import store
from attune.workflow.engine.commands import apply
from attune.workflow.engine.store import Run, WorkflowContext, WorkflowStateError, keys_for, locked_run, move


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
        delegated = await rerun_through_parent(session, execution, ctx, tasks)
        if delegated is not None:
            return delegated
    run = await locked_run(session, execution, ctx)
    if execution.status != ExecutionStatus.FAILED.value or run.row.status != ExecutionStatus.FAILED.value:
        raise WorkflowStateError(f"Workflow execution {execution.id} is {execution.status}, not failed")
    if not await move(session, execution, ExecutionStatus.FAILED, ExecutionStatus.RUNNING, result=None):
        raise WorkflowStateError(f"Workflow execution {execution.id} changed meanwhile")
    run.parent.status, run.parent.result = ExecutionStatus.RUNNING.value, None
    run.row.status = ExecutionStatus.RUNNING.value
    run.row.error_message = None
    run.keys = await keys_for(session, run.spec, run.parent, ctx)
    rerun = conductor.Rerun(tasks=tasks)
    state, commands = await budget.offload(
        conductor.advance, run.spec, run.state, rerun, engine=ctx.engine, keys=run.keys
    )
    if state.finished:
        wanted = ", ".join(tasks) if tasks else "any"
        raise WorkflowStateError(f"Workflow execution {execution.id} has no failed task to re-run ({wanted})")
    run.state = state
    await apply(session, run, await resume_nested(session, run, commands, ctx), ctx)
    await store.persist(session, run, ctx)
    return run.row


async def rerun_through_parent(
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


async def resume_nested(
    session: AsyncSession, run: Run, commands: Sequence[conductor.Command], ctx: WorkflowContext
) -> list[conductor.Command]:
    """Carry out re-run RunTasks whose last child is a failed nested workflow by resuming it.

    Returns the commands left for :func:`apply`.
    """
    wanted = {(c.task, c.index) for c in commands if isinstance(c, conductor.RunTask)}
    if not wanted:
        return list(commands)
    latest: dict[tuple[str | None, Any], Execution] = {}
    for child in await repo.task_children(session, run.row.id, sorted({name for name, _ in wanted})):
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
