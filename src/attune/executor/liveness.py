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
(:func:`attune.operations.orphans.take_back`), so a quick restart never waits for the sweep.

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
from attune.operations.orphans import settle_orphan
from attune.platform import Platform

log = logging.getLogger(__name__)


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
            outcome = await settle_orphan(session, execution, worker, box=self._platform.secrets)
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
