"""Worker liveness and taking work back from a dead worker (docs/operations.md "Worker liveness",
"Guarantees").

Every ``worker.heartbeat_interval / 4`` seconds the monitor:

1. marks ``inactive`` the active action workers whose heartbeat is older than
   ``1.5 × heartbeat_interval`` (or missing);
2. takes back the executions of those workers: one still ``scheduled`` never started, so it is
   **rescheduled** (back to ``requested`` without a worker, ``ExecutionRequested`` staged; the
   scheduler sends it to any live worker); one ``running`` lost its process with the worker, so it
   ends ``abandoned`` (``{"succeeded": false, "error": "Worker '<name>' stopped heartbeating",
   "worker": id}``) and is retried when the action's retry policy says so; one ``canceling`` ends
   ``cancelled``.

Each decision is re-checked in the transaction that makes it, with the worker row locked: a
worker that came back (restarted with its name and id, or simply late) between the scan and the
write keeps its executions. A restarted worker takes back its own executions itself at start-up
(:func:`take_back`), so a quick restart never waits for the sweep.

The monitor only judges heartbeats it could have seen: after it starts, and after it could not
reach the database, it waits one full stale window before declaring anyone gone, so a database
restart (during which no worker can write its heartbeat) abandons nothing.

A worker of this very process (the embedded server) is alive as long as the process is, so it is
exempt: under a burst of work the shared event loop can write its heartbeat late.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from attune.db.models import Execution, Worker
from attune.db.repos import executions, workers
from attune.domain.enums import ExecutionStatus
from attune.executor import retries
from attune.operations.executions import finish_execution, request_retry, reschedule
from attune.platform import Platform

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
    platform: Platform,
    session: AsyncSession,
    execution: Execution,
    worker: Worker | None,
    *,
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
            retry = await request_retry(session, execution, box=platform.secrets, reason=why)
            if retry is not None:
                return "abandoned+retried"
    return "abandoned"


async def take_back(platform: Platform, worker_id: int, *, reason: str = "restarted") -> dict[str, int]:
    """A worker that (re)starts under its name takes back what a previous process left behind.

    Nothing of this process runs yet, so every busy execution assigned to ``worker_id`` belongs
    to a dead predecessor: never-started ones are rescheduled, running ones are abandoned (and
    retried per policy), canceling ones end cancelled. Returns counts per outcome.
    """
    db = platform.db
    async with db.session() as session:
        rows = await executions.assigned_to(session, worker_id, workers.BUSY_STATUSES)
        worker = await session.get(Worker, worker_id)
    counts: dict[str, int] = {}
    for execution in rows:
        try:
            async with db.transaction() as session:
                outcome = await settle_orphan(platform, session, execution, worker, reason=reason)
        except Exception:
            log.exception("could not take back execution %s", execution.id)
            continue
        if outcome is not None:
            counts[outcome] = counts.get(outcome, 0) + 1
    if counts:
        log.warning("worker %s took back the executions of its previous process: %s", worker_id, counts)
    return counts


class LivenessMonitor:
    """Marks silent workers inactive and takes their executions back."""

    def __init__(self, platform: Platform) -> None:
        self._platform = platform
        # When this monitor last started seeing the database; heartbeats older than that were
        # not observable, so nobody is judged before a full stale window has passed since.
        self._watching_since: float | None = None

    @property
    def interval(self) -> float:
        """Seconds between two sweeps."""
        return self._platform.settings.worker.heartbeat_interval / 4

    def _window(self) -> float:
        return workers.STALE_FACTOR * self._platform.settings.worker.heartbeat_interval

    async def sweep(self) -> int:
        """One pass; returns how many executions were taken back."""
        try:
            return await self._sweep()
        except Exception:
            self._watching_since = None
            raise

    async def _sweep(self) -> int:
        heartbeat = self._platform.settings.worker.heartbeat_interval
        db = self._platform.db
        if self._watching_since is None:
            if not await db.ping():
                raise ConnectionError("the database does not answer")
            self._watching_since = self._platform.clock.monotonic()
        if self._platform.clock.monotonic() - self._watching_since < self._window():
            return 0
        now = self._platform.clock.now()
        async with db.transaction() as session:
            stale = await workers.mark_stale_inactive(
                session, now=now, heartbeat_interval=heartbeat, alive=self._platform.local_workers
            )
        if stale:
            log.warning("worker(s) %s stopped heartbeating; marked inactive", stale)
        async with db.session() as session:
            orphans = await workers.orphaned_executions(
                session, now=now, heartbeat_interval=heartbeat, alive=self._platform.local_workers
            )
        count = 0
        for execution, worker in orphans:
            try:
                if await self._take_back(execution, worker):
                    count += 1
            except Exception:
                log.exception("could not take back execution %s", execution.id)
        return count

    async def _take_back(self, execution: Execution, worker: Worker | None) -> bool:
        db = self._platform.db
        heartbeat = self._platform.settings.worker.heartbeat_interval
        async with db.transaction() as session:
            if execution.worker is not None and not await _still_stale(
                session, execution.worker, self._platform.clock.now(), heartbeat
            ):
                log.info("worker of execution %s is back; leaving it alone", execution.id)
                return False
            outcome = await settle_orphan(self._platform, session, execution, worker)
        if outcome is None:
            return False
        name = worker.name if worker is not None else f"#{execution.worker}"
        log.warning("execution %s of silent worker '%s': %s", execution.id, name, outcome)
        return True


async def _still_stale(
    session: AsyncSession, worker_id: int, now: datetime, heartbeat_interval: float
) -> bool:
    """Whether the worker is still silent, read in the deciding transaction (row locked where the
    database can, so a heartbeat or re-registration waits for the decision or wins before it)."""
    last = await executions.worker_heartbeat_locked(session, worker_id)
    if last is None:
        return True
    return bool(last < workers.stale_cutoff(now, heartbeat_interval))
