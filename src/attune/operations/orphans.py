"""Taking executions back from a dead worker (docs/operations.md "Worker liveness", "Guarantees").

Shared by the executor's liveness sweep (a worker that stopped heartbeating) and by a worker that
restarts under its name (whatever is busy on it belongs to its dead predecessor).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from attune.db.database import Database
from attune.db.models import Execution, Worker
from attune.db.repos import executions, workers
from attune.domain.crypto import SecretBox
from attune.domain.enums import ExecutionStatus
from attune.operations import retries
from attune.operations.executions import finish_execution, request_retry, reschedule

log = logging.getLogger(__name__)

#: Executions taken back per transaction (docs/performance.md "Taking back a dead worker's work").
BATCH = 100

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
    for start in range(0, len(rows), BATCH):
        batch = rows[start : start + BATCH]
        try:
            outcomes = await _settle_batch(db, batch, worker, box=box, reason=reason)
        except Exception:
            # One of them failed and the batch rolled back: one transaction each, from a fresh
            # read (the rolled-back pass changed the loaded rows), so the others are still taken
            # back and only the failing one is logged and left.
            log.warning("taking back a batch of %d executions failed; one by one", len(batch))
            wanted = {execution.id for execution in batch}
            async with db.session() as session:
                again = await executions.assigned_to(session, worker_id, workers.BUSY_STATUSES)
            fresh = [execution for execution in again if execution.id in wanted]
            outcomes = await _settle_each(db, fresh, worker, box=box, reason=reason)
        for outcome in outcomes:
            if outcome is not None:
                counts[outcome] = counts.get(outcome, 0) + 1
    if counts:
        log.warning("worker %s took back the executions of its previous process: %s", worker_id, counts)
    return counts


async def _settle_batch(
    db: Database, batch: Sequence[Execution], worker: Worker | None, *, box: SecretBox | None, reason: str
) -> list[str | None]:
    """Settle ``batch`` in one transaction (all or nothing)."""
    async with db.transaction() as session:
        return [await settle_orphan(session, row, worker, box=box, reason=reason) for row in batch]


async def _settle_each(
    db: Database, batch: Sequence[Execution], worker: Worker | None, *, box: SecretBox | None, reason: str
) -> list[str | None]:
    """Settle ``batch`` one transaction per execution; a failing one is logged and skipped."""
    outcomes: list[str | None] = []
    for execution in batch:
        try:
            async with db.transaction() as session:
                outcomes.append(await settle_orphan(session, execution, worker, box=box, reason=reason))
        except Exception:
            log.exception("could not take back execution %s", execution.id)
    return outcomes
