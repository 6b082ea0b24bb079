"""What a worker does to an execution it was sent: claim it, record its outcome
(docs/operations.md "Guarantees").
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from attune.db.models import Execution
from attune.db.repos import executions, transitions
from attune.db.types import utcnow
from attune.domain.enums import ExecutionStatus
from attune.messaging.messages import MessageType
from attune.operations import inquiries
from attune.operations.executions import finish_execution
from attune.operations.inquiry_requests import requested

log = logging.getLogger(__name__)

_FINAL_FROM = (ExecutionStatus.RUNNING.value, ExecutionStatus.CANCELING.value)
_NOT_STARTED = (ExecutionStatus.REQUESTED.value, ExecutionStatus.SCHEDULED.value)


async def claim(
    session: AsyncSession, execution_id: int, worker_id: int, *, source_service: str
) -> Execution | None:
    """Atomically move ``scheduled → running`` for this worker; None when 0 rows changed.

    One ``UPDATE … RETURNING`` that also loads the execution the worker goes on with.
    """
    now = utcnow()
    scheduled, running = ExecutionStatus.SCHEDULED.value, ExecutionStatus.RUNNING.value
    return await transitions.transition_loading(
        session,
        execution_id,
        from_statuses=(scheduled,),
        on_worker=worker_id,
        messages=lambda row: [
            executions.status_changed_message(row["id"], row["action_ref"], scheduled, running)
        ],
        source_service=source_service,
        status=running,
        started_at=now,
        updated=now,
    )


async def record_outcome(
    session: AsyncSession,
    execution: Execution,
    status: str,
    result: dict[str, Any],
    *,
    action_id: int,
    source_service: str,
) -> str | None:
    """Write the final status and result (only from running/canceling) and stage the messages.

    A result is never discarded because the liveness monitor gave up on this worker too early
    (a heartbeat held up by a busy host or a database restart): an execution ``abandoned`` while
    assigned to this worker takes the real outcome, and the automatic retry the abandonment
    requested is cancelled if it has not started yet (docs/operations.md "Guarantees").

    Returns the status written, or None when the execution had already left running otherwise
    (cancelled, or taken over by another worker).
    """
    now = utcnow()
    running = ExecutionStatus.RUNNING.value
    if status != ExecutionStatus.COMPLETED.value or requested(result) is None:
        # The usual case, one statement: a run that asked no question, still running without a
        # result, so the compare-and-set knows every old value. Anything else reads first.
        if await _write_outcome(
            session, execution, running, None, status, result, now, action_id, source_service, fast=True
        ):
            return status
    previous, owner, old_result = await executions.status_worker_result_locked(session, execution.id)
    late = previous == ExecutionStatus.ABANDONED.value and owner is not None and owner == execution.worker
    if previous not in _FINAL_FROM and not late:
        log.warning(
            "execution %s is %s, not running; its %s result is discarded", execution.id, previous, status
        )
        return None
    if previous == running:
        # An action that asked a question (``__inquiry``) waits for the answer without a worker.
        held, status, result = await inquiries.hold_if_requested(
            session, execution, status, result, source_service=source_service
        )
        if held:
            return status
    await _write_outcome(
        session, execution, str(previous), old_result, status, result, now, action_id, source_service
    )
    if late:
        log.warning(
            "execution %s was declared abandoned, but its worker finished it: %s", execution.id, status
        )
        await _cancel_unstarted_retry(session, execution)
    return status


async def _write_outcome(
    session: AsyncSession,
    execution: Execution,
    previous: str,
    old_result: Any,
    status: str,
    result: dict[str, Any],
    now: datetime,
    action_id: int,
    source_service: str,
    *,
    fast: bool = False,
) -> bool:
    """``previous → status`` with ``result``, staging ``ExecutionStatusChanged`` and
    ``ExecutionCompleted``. ``fast``: only if the row has no result yet (else nothing happens)."""
    completed: transitions.Message = (
        MessageType.EXECUTION_COMPLETED,
        {
            "execution_id": execution.id,
            "action_id": action_id,
            "action_ref": execution.action_ref,
            "status": status,
            "result": result,
            "completed_at": now,
            "workflow_child": execution.workflow_execution_id is not None,
        },
        None,
    )
    moved = await transitions.transition(
        session,
        execution.id,
        from_statuses=(previous,),
        old=None if fast else {"result": old_result},
        result_is_null=fast,
        messages=lambda _row: [
            executions.status_changed_message(execution.id, execution.action_ref, previous, status),
            completed,
        ],
        source_service=source_service,
        status=status,
        result=result,
        updated=now,
    )
    return moved is not None


async def _cancel_unstarted_retry(session: AsyncSession, execution: Execution) -> None:
    """Cancel the retry an abandonment requested, unless it already started (then both run)."""
    for retry in await executions.retries_in(session, execution, _NOT_STARTED):
        result = {
            "succeeded": False,
            "error": f"Not needed: attempt {execution.id} finished after all",
            "message": "Execution was cancelled",
        }
        if await finish_execution(
            session, retry, ExecutionStatus.CANCELLED, result, from_statuses=_NOT_STARTED
        ):
            log.info("retry %s of execution %s cancelled: the attempt finished", retry.id, execution.id)
