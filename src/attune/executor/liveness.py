"""Worker liveness monitor (services.md §1.11, pipeline contract "Workers and liveness").

Every ``worker.heartbeat_interval / 4`` seconds:

1. active action workers whose heartbeat is older than ``1.5 × heartbeat_interval`` (or missing)
   become ``inactive``;
2. every execution in ``scheduled``/``running``/``canceling`` whose worker stopped heartbeating
   (or no longer exists) becomes ``abandoned`` with
   ``{"succeeded": false, "error": "Worker '<name>' stopped heartbeating", "worker": id}``, and
   ``ExecutionCompleted`` is staged. When its retry budget allows, the next attempt is requested
   in the same transaction (``retry_reason = worker_heartbeat_stale``).

So an execution leaves ``running`` at most ``1.5 + 0.25`` heartbeat intervals after its worker's
last heartbeat: no execution stays running after its worker is gone.

A worker of this very process (the embedded server) is alive as long as the process is, so it is
exempt: under a burst of work the shared event loop can write its heartbeat late.
"""

from __future__ import annotations

import logging

from attune.db.models import Execution, Worker
from attune.db.repos import workers
from attune.db.types import utcnow
from attune.domain.enums import ExecutionStatus
from attune.executor import retries
from attune.executor.completion import finish_execution
from attune.runtime import Runtime

log = logging.getLogger(__name__)


def abandoned_result(execution: Execution, worker: Worker | None) -> dict[str, object]:
    """The stored result of an execution whose worker is gone."""
    name = worker.name if worker is not None else f"#{execution.worker}"
    return {"succeeded": False, "error": f"Worker '{name}' stopped heartbeating", "worker": execution.worker}


class LivenessMonitor:
    """Marks silent workers inactive and takes their executions back."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    @property
    def interval(self) -> float:
        """Seconds between two sweeps."""
        return self._runtime.settings.worker.heartbeat_interval / 4

    async def sweep(self) -> int:
        """One pass; returns how many executions were abandoned."""
        heartbeat = self._runtime.settings.worker.heartbeat_interval
        now = utcnow()
        db = self._runtime.db
        async with db.transaction() as session:
            stale = await workers.mark_stale_inactive(
                session, now=now, heartbeat_interval=heartbeat, alive=self._runtime.local_workers
            )
        if stale:
            log.warning("worker(s) %s stopped heartbeating; marked inactive", stale)
        async with db.session() as session:
            orphans = await workers.orphaned_executions(
                session, now=now, heartbeat_interval=heartbeat, alive=self._runtime.local_workers
            )
        count = 0
        for execution, worker in orphans:
            try:
                if await self._abandon(execution, worker):
                    count += 1
            except Exception:
                log.exception("could not abandon execution %s", execution.id)
        return count

    async def _abandon(self, execution: Execution, worker: Worker | None) -> bool:
        result = abandoned_result(execution, worker)
        async with self._runtime.db.transaction() as session:
            done = await finish_execution(
                session,
                execution,
                ExecutionStatus.ABANDONED,
                result,
                from_statuses=workers.BUSY_STATUSES,
            )
            if not done:
                return False
            retry = None
            if retries.retries_left(execution):
                # The action's retry policy decides (``abandoned`` counts as ``failed``).
                policy = await retries.policy_for(session, execution)
                reason = retries.retry_reason(execution, policy) if policy is not None else None
                if reason is not None:
                    retry = await retries.request_retry(
                        session, execution, box=self._runtime.secrets, reason=reason
                    )
        log.warning(
            "execution %s abandoned: %s%s",
            execution.id,
            result["error"],
            f"; retried as {retry.id}" if retry is not None else "",
        )
        return True
