"""Control requests on a running workflow: cancel, pause and resume (docs/workflows.md "Control").

Each takes the run's lock first, as every step of that run does, and works in the caller's
transaction. Re-run lives in :mod:`attune.workflow.engine.rerun`.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from attune.db.models import Execution, WorkflowExecution
from attune.domain.enums import ExecutionStatus
from attune.workflow import conductor

# ``commands`` cancels nested workflows through this module: import the module, not its names.
from attune.workflow.engine import commands
from attune.workflow.engine.store import (
    TERMINAL,
    WORKFLOW_ACTIVE,
    WorkflowContext,
    WorkflowStateError,
    locked_run,
    move,
)


async def cancel_workflow(session: AsyncSession, execution: Execution, ctx: WorkflowContext) -> None:
    """Cancel a running workflow: the parent becomes ``canceling``, its live children are cancelled
    and the workflow finishes ``cancelled`` once they have reported back."""
    run = await locked_run(session, execution, ctx)
    if run.row.status in TERMINAL:
        return
    if execution.status in WORKFLOW_ACTIVE:
        await move(session, execution, ExecutionStatus(execution.status), ExecutionStatus.CANCELING)
        run.parent.status = ExecutionStatus.CANCELING.value
    run.row.status = ExecutionStatus.CANCELING.value
    run.timers.clear()
    await commands.step(session, run, conductor.Cancel(), ctx)


async def pause_workflow(
    session: AsyncSession, execution: Execution, ctx: WorkflowContext
) -> WorkflowExecution:
    """Stop dispatching new tasks; running children finish and are recorded (409 unless running)."""
    run = await locked_run(session, execution, ctx)
    if run.row.status != ExecutionStatus.RUNNING.value or execution.status != ExecutionStatus.RUNNING.value:
        raise WorkflowStateError(f"Workflow execution {execution.id} is {run.row.status}, not running")
    if run.row.paused or run.row.pause_reason:
        raise WorkflowStateError(f"Workflow execution {execution.id} is already paused")
    run.row.pause_reason = "Paused on request"
    # The execution says so at once; tasks already running still finish and are recorded.
    if not await move(session, execution, ExecutionStatus.RUNNING, ExecutionStatus.PAUSED):
        raise WorkflowStateError(f"Workflow execution {execution.id} changed meanwhile")
    run.parent.status = ExecutionStatus.PAUSED.value
    await commands.step(session, run, conductor.Pause(), ctx)
    return run.row


async def resume_workflow(
    session: AsyncSession, execution: Execution, ctx: WorkflowContext
) -> WorkflowExecution:
    """Continue a paused (or pausing) workflow (409 otherwise)."""
    run = await locked_run(session, execution, ctx)
    if run.row.status != ExecutionStatus.RUNNING.value or not (run.row.paused or run.row.pause_reason):
        raise WorkflowStateError(f"Workflow execution {execution.id} is not paused")
    if execution.status == ExecutionStatus.PAUSED.value:
        await move(session, execution, ExecutionStatus.PAUSED, ExecutionStatus.RUNNING)
        run.parent.status = ExecutionStatus.RUNNING.value
    run.row.paused = False
    run.row.pause_reason = None
    await commands.step(session, run, conductor.Resume(), ctx)
    return run.row
