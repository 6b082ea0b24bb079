"""Taking executions back from a dead worker (docs/operations.md "Worker liveness", "Guarantees").

Shared by the executor's liveness sweep (a worker that stopped heartbeating) and by a worker that
restarts under its name (whatever is busy on it belongs to its dead predecessor).
"""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession

from attune.db.database import Database
from attune.db.models import Execution, Worker
from attune.db.repos import executions, workers
from attune.domain.crypto import SecretBox
from attune.domain.enums import ExecutionStatus
from attune.operations import retries
from attune.operations.executions import finish_execution, request_retry, reschedule

log = logging.getLogger(__name__)

_RUNNING = (ExecutionStatus.RUNNING.value,)
_CANCELING = (ExecutionStatus.CANCELING.value,)


def abandoned_result(
    execution: Execution, worker: Worker | None, reason: str = "stopped heartbeating"
) -> dict[str, object]:
    """The stored result of an execution whose worker is gone."""
    name = worker.name if worker is not None else f"#{execution.worker}"
    return {"succeeded": False, "error": f"Worker '{name}' {reason}", "worker": execution.worker}


async def settle_orphan(
    session: AsyncSession,
    execution: Execution,
    worker: Worker | None,
    *,
    box: SecretBox | None,
    reason: str = "stopped heartbeating",
) -> str | None:
    """Take one execution back from its dead worker, inside ``session``'s transaction.

    ``scheduled`` → rescheduled; ``running`` → ``abandoned`` (+ retry per the action's policy);
    ``canceling`` → ``cancelled``. Returns what was done (``rescheduled``, ``abandoned``,
    ``abandoned+retried``, ``cancelled``), or None when the execution had moved on meanwhile.
    """
    status = execution.status
    if status == ExecutionStatus.SCHEDULED.value:
        return "rescheduled" if await reschedule(session, execution, worker_id=execution.worker) else None
    if status == ExecutionStatus.CANCELING.value:
        result = {**abandoned_result(execution, worker, reason), "message": "Execution was cancelled"}
        done = await finish_execution(
            session, execution, ExecutionStatus.CANCELLED, result, from_statuses=_CANCELING
        )
        return "cancelled" if done else None
    if status != ExecutionStatus.RUNNING.value:
        return None
    result = abandoned_result(execution, worker, reason)
    if not await finish_execution(
        session, execution, ExecutionStatus.ABANDONED, result, from_statuses=_RUNNING
    ):
        return None
    if retries.retries_left(execution):
        # The action's retry policy decides (``abandoned`` counts as ``failed``).
        policy = await retries.policy_for(session, execution)
        why = retries.retry_reason(execution, policy) if policy is not None else None
        if why is not None:
            retry = await request_retry(session, execution, box=box, reason=why)
            if retry is not None:
                return "abandoned+retried"
    return "abandoned"


async def take_back(
    db: Database, worker_id: int, *, box: SecretBox | None, reason: str = "restarted"
) -> dict[str, int]:
    """A worker that (re)starts under its name takes back what a previous process left behind.

    Nothing of this process runs yet, so every busy execution assigned to ``worker_id`` belongs
    to a dead predecessor: never-started ones are rescheduled, running ones are abandoned (and
    retried per policy), canceling ones end cancelled. Returns counts per outcome.
    """
    async with db.session() as session:
        rows = await executions.assigned_to(session, worker_id, workers.BUSY_STATUSES)
        worker = await session.get(Worker, worker_id)
    counts: dict[str, int] = {}
    for execution in rows:
        try:
            async with db.transaction() as session:
                outcome = await settle_orphan(session, execution, worker, box=box, reason=reason)
        except Exception:
            log.exception("could not take back execution %s", execution.id)
            continue
        if outcome is not None:
            counts[outcome] = counts.get(outcome, 0) + 1
    if counts:
        log.warning("worker %s took back the executions of its previous process: %s", worker_id, counts)
    return counts
