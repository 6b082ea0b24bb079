"""Execution transitions the executor, the worker and the API share: dispatch, reschedule, finish
and retry (docs/operations.md "Guarantees").

Every transition is a compare-and-set (:func:`attune.db.repos.executions.move`): it happens only
if the execution is still in the expected status, and it stages its messages in the caller's
transaction, so every transition is announced exactly once and a redelivery, a second executor or
a concurrent cancel changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from attune.db.models import Execution, Worker
from attune.db.repos import executions as repo
from attune.db.repos import transitions
from attune.db.types import utcnow
from attune.domain.crypto import SecretBox
from attune.domain.enums import ExecutionStatus
from attune.domain.params import secret_names
from attune.messaging.messages import MessageType, dispatch_routing

log = logging.getLogger(__name__)

SOURCE = "executor"
_REQUESTED = (ExecutionStatus.REQUESTED.value,)
_SCHEDULED = (ExecutionStatus.SCHEDULED.value,)


def stage_status_changed(
    session: AsyncSession, execution: Execution, previous: str, new: str, *, source_service: str = SOURCE
) -> None:
    """Stage ``ExecutionStatusChanged`` for a transition made to ``execution``."""
    repo.stage_status_changed(session, execution, previous, new, source_service=source_service)


async def finish_execution(
    session: AsyncSession,
    execution: Execution,
    status: ExecutionStatus,
    result: Any,
    *,
    from_statuses: Collection[str],
) -> bool:
    """Move ``execution`` to the terminal ``status`` if it is still in one of ``from_statuses``.

    Stages ``ExecutionStatusChanged`` and ``ExecutionCompleted``. Returns False (and stages
    nothing) when another actor changed the status first.
    """
    previous = execution.status
    now = utcnow()
    completed: transitions.Message = (
        MessageType.EXECUTION_COMPLETED,
        {
            "execution_id": execution.id,
            "action_id": execution.action or 0,
            "action_ref": execution.action_ref,
            "status": status.value,
            "result": result,
            "completed_at": now.isoformat(),
            "workflow_child": execution.workflow_execution_id is not None,
        },
        None,
    )
    moved = await transitions.transition(
        session,
        execution.id,
        from_statuses=from_statuses,
        messages=lambda _row: [
            repo.status_changed_message(execution.id, execution.action_ref, previous, status.value),
            completed,
        ],
        source_service=SOURCE,
        status=status.value,
        result=result,
        updated=now,
    )
    if moved is None:
        return False
    execution.status, execution.result, execution.updated = status.value, result, now
    return True


async def dispatch(session: AsyncSession, execution: Execution, worker: Worker) -> bool:
    """``requested → scheduled`` on ``worker`` and stage the dispatch to its queue.

    False (nothing staged) when the execution left ``requested`` meanwhile (cancelled, or already
    scheduled by a redelivery or another executor).
    """
    requested, scheduled = ExecutionStatus.REQUESTED.value, ExecutionStatus.SCHEDULED.value
    to_worker: transitions.Message = (
        MessageType.EXECUTION_REQUESTED,
        {
            "execution_id": execution.id,
            "worker_id": worker.id,
            "action_ref": execution.action_ref,
            "config": execution.config if isinstance(execution.config, dict) else None,
        },
        dispatch_routing(worker.id),
    )
    moved = await transitions.transition(
        session,
        execution.id,
        from_statuses=_REQUESTED,
        messages=lambda _row: [
            repo.status_changed_message(execution.id, execution.action_ref, requested, scheduled),
            to_worker,
        ],
        source_service=SOURCE,
        status=scheduled,
        worker=worker.id,
        updated=utcnow(),
    )
    return moved is not None


async def reschedule(session: AsyncSession, execution: Execution, *, worker_id: int | None) -> bool:
    """Send a ``scheduled`` execution that never started back to the scheduler.

    ``scheduled`` on ``worker_id`` → ``requested`` with no worker, and ``ExecutionRequested`` is
    staged in the same transaction, so the scheduler picks a live worker again (possibly the
    same one, restarted). The dispatch still queued for the old worker then claims nothing: the
    worker's claim needs ``scheduled`` on itself. False when the execution moved on meanwhile.
    """
    scheduled, requested = ExecutionStatus.SCHEDULED.value, ExecutionStatus.REQUESTED.value
    to_scheduler: transitions.Message = (
        MessageType.EXECUTION_REQUESTED,
        {
            "execution_id": execution.id,
            "action_id": execution.action or 0,
            "action_ref": execution.action_ref,
            "parent_id": execution.parent,
            "enforcement_id": execution.enforcement,
            "config": execution.config if isinstance(execution.config, dict) else None,
        },
        None,
    )
    moved = await transitions.transition(
        session,
        execution.id,
        from_statuses=_SCHEDULED,
        on_worker=worker_id,
        messages=lambda _row: [
            repo.status_changed_message(execution.id, execution.action_ref, scheduled, requested),
            to_scheduler,
        ],
        source_service=SOURCE,
        status=requested,
        worker=None,
        updated=utcnow(),
    )
    if moved is None:
        return False
    execution.status, execution.worker = ExecutionStatus.REQUESTED.value, None
    log.info("execution %s never started on worker %s; rescheduled", execution.id, worker_id)
    return True


async def request_retry(
    session: AsyncSession, execution: Execution, *, box: SecretBox | None, reason: str
) -> Execution | None:
    """Create the next attempt of ``execution`` (stages ``ExecutionRequested``); idempotent.

    Returns ``None`` when a retry already exists, the action is gone or the secrets cannot be
    read back (logged).
    """
    if await repo.existing_retry(session, execution) is not None:
        return None
    action = await repo.action_for(session, execution)
    if action is None:
        log.warning("not retrying execution %s: action %r is gone", execution.id, execution.action_ref)
        return None
    try:
        secrets = repo.reveal_secrets(execution.secret_params, box)
    except Exception:
        log.exception("not retrying execution %s: its secret parameters cannot be decrypted", execution.id)
        return None
    params = repo.full_parameters(execution, box)
    # Secrets the schema no longer declares stay sealed: they reach the retry via
    # ``secret_values`` and its config shows the mask, as the original's did.
    declared = secret_names(repo.flat_schema(action.param_schema))
    for name in secrets:
        if name not in declared:
            params[name] = repo.SECRET_MASK
    retry = await repo.request_execution(
        session,
        action,
        params,
        box=box,
        source_service=SOURCE,
        executor=execution.executor,
        enforcement=execution.enforcement,
        parent=execution.parent,
        env_vars=execution.env_vars,
        original_execution=execution.original_execution or execution.id,
        retry_count=execution.retry_count + 1,
        retry_reason=reason,
        # These parameters were accepted once; a later schema change must not strand the retry.
        validate=False,
        secret_values=secrets,
    )
    log.info(
        "execution %s retried as %s (attempt %s, reason %s)",
        execution.id,
        retry.id,
        retry.retry_count,
        reason,
    )
    return retry
