"""Cancelling and re-running an execution on a user's request (the API's use cases).

Either may reach into a workflow run — cancelling its live children, resuming a failed run from its
failed tasks — so they live with the engine; plain executions take the same path. The caller opens
the transaction (docs/development.md "Where a query belongs").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from attune.db.models import Action, Execution
from attune.db.repos import executions as repo
from attune.domain.crypto import SecretBox
from attune.domain.enums import TERMINAL_EXECUTION_STATUSES, ExecutionStatus
from attune.errors import Conflict, NotFound, ValidationFailed
from attune.operations.control import MANUAL_SOURCE, Authorize, not_found
from attune.workflow.engine.commands import cancel_execution
from attune.workflow.engine.rerun import rerun_workflow
from attune.workflow.engine.store import WorkflowContext


async def cancel(
    session: AsyncSession, execution_id: int, *, box: SecretBox | None, source: str, authorize: Authorize
) -> Execution:
    """Cancel an execution; returns it as it is now.

    Before a worker starts it (``requested``/``scheduling``/``scheduled``) it becomes ``cancelled``
    at once; while it runs it becomes ``canceling`` and its worker kills the whole process group,
    then records ``cancelled``; one waiting on an inquiry is cancelled with its inquiry; a workflow
    run cancels its live children and ends ``cancelled`` once they have reported back. 404 unknown,
    409 already terminal; a second cancel is harmless.
    """
    execution = await repo.get_locked(session, execution_id)
    if execution is None:
        raise not_found(execution_id)
    authorize(execution)
    status = ExecutionStatus(execution.status)
    if status in TERMINAL_EXECUTION_STATUSES:
        raise Conflict(f"Execution {execution_id} is already {status.value}")
    workflow_run = execution.is_workflow and execution.worker is None
    if not (workflow_run and status in (ExecutionStatus.RUNNING, ExecutionStatus.PAUSED)):
        # The cancel writes through compare-and-set UPDATEs; a detached instance keeps the unit of
        # work from writing (and auditing) the same transition a second time at flush.
        session.expunge(execution)
    await cancel_execution(session, execution, WorkflowContext(box=box, source=source))
    await session.flush()
    current = await repo.reload(session, execution_id)
    if current is None:  # cannot happen: the row is locked (or writers serialised) since the read
        raise not_found(execution_id)
    return current


@dataclass(frozen=True)
class Rerun:
    """The outcome of :func:`rerun`: a new execution, or the failed workflow resumed in place."""

    execution: Execution
    resumed: bool
    action: Action | None = None


async def rerun(
    session: AsyncSession,
    execution_id: int,
    *,
    changes: dict[str, Any],
    from_failed: bool | None,
    box: SecretBox | None,
    source: str,
    executor: int | None,
    authorize: Authorize,
) -> Rerun:
    """Run an execution's action again with the same parameters (secret ones included).

    ``changes`` are merged over the original parameters (validated against the action's schema).
    A failed workflow execution resumes in place from its failed task(s) when ``from_failed`` is
    true, or by default (None) when no parameter changes; ``from_failed`` true on anything else is
    a 409, and together with ``changes`` a 422.
    """
    source_row = await repo.get_locked(session, execution_id)
    if source_row is None:
        raise not_found(execution_id)
    authorize(source_row)
    resumable = source_row.is_workflow and source_row.status == ExecutionStatus.FAILED.value
    if from_failed and changes:
        raise ValidationFailed("parameters cannot change when a workflow resumes from its failed tasks")
    if from_failed or (from_failed is None and resumable and not changes):
        if not resumable:
            raise Conflict(f"Execution {execution_id} is not a failed workflow execution")
        await rerun_workflow(session, source_row, WorkflowContext(box=box, source=source))
        await session.flush()
        return Rerun(execution=source_row, resumed=True)
    action = await repo.action_for(session, source_row)
    if action is None:
        raise NotFound(f"Action '{source_row.action_ref}' not found")
    execution = await repo.request_execution(
        session,
        action,
        {**repo.full_parameters(source_row, box), **changes},
        box=box,
        source_service=MANUAL_SOURCE,
        executor=executor,
        env_vars=source_row.env_vars,
        original_execution=source_row.original_execution or source_row.id,
        retry_reason="manual_retry",
    )
    return Rerun(execution=execution, resumed=False, action=action)
