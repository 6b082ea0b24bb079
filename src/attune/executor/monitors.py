"""The scheduled-timeout monitor (docs/operations.md) and the dead-letter handler.

Both fail executions a worker never picked up and, unlike the original, stage the standard
``ExecutionCompleted`` so slots are released and retries can follow.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from attune.db.repos import executions
from attune.domain.enums import ExecutionStatus
from attune.domain.templates import rfc3339
from attune.messaging.messages import Envelope, MessageType
from attune.operations.executions import finish_execution
from attune.platform import Platform

log = logging.getLogger(__name__)

#: Executions failed per monitor pass at most.
BATCH = 100
_SCHEDULED = (ExecutionStatus.SCHEDULED.value,)
_HANDED_OFF = (ExecutionStatus.SCHEDULED.value, ExecutionStatus.RUNNING.value)


class ScheduledTimeoutMonitor:
    """Fails executions left ``scheduled`` longer than ``executor.scheduled_timeout``."""

    def __init__(self, platform: Platform) -> None:
        self._platform = platform

    @property
    def interval(self) -> float:
        """Seconds between two passes."""
        return float(self._platform.settings.executor.timeout_check_interval)

    async def sweep(self) -> int:
        """One pass (up to :data:`BATCH` executions, oldest first); returns how many failed."""
        timeout = self._platform.settings.executor.scheduled_timeout
        now = self._platform.clock.now()
        async with self._platform.db.session() as session:
            rows = await executions.stuck_in(
                session, ExecutionStatus.SCHEDULED.value, before=now - timedelta(seconds=timeout), limit=BATCH
            )
        count = 0
        for execution in rows:
            age = int((now - execution.updated).total_seconds())
            result = {
                "succeeded": False,
                "error": (
                    f"Execution timeout: worker did not pick up task within {timeout} seconds "
                    f"(scheduled for {age} seconds)"
                ),
                "failed_by": "execution_timeout_monitor",
                "timeout_seconds": timeout,
                "age_seconds": age,
                "original_status": "scheduled",
            }
            async with self._platform.db.transaction() as session:
                if await finish_execution(
                    session, execution, ExecutionStatus.FAILED, result, from_statuses=_SCHEDULED
                ):
                    count += 1
                    log.warning("execution %s failed: %s", execution.id, result["error"])
        return count


class DeadLetterHandler:
    """Consumes ``attune.dlx.queue``: fails executions whose dispatch expired or was rejected.

    A dead-lettered dispatch (``ExecutionRequested`` with a ``worker_id``) fails its execution
    while it is still ``scheduled``/``running`` on that worker. A dead-lettered request to the
    scheduler (no ``worker_id``) fails an execution still ``requested``, which would otherwise
    wait forever. Everything else is logged and dropped.
    """

    def __init__(self, platform: Platform) -> None:
        self._platform = platform

    async def handle(self, envelope: Envelope) -> None:
        """Handle one dead letter (database errors propagate; the message is then dropped)."""
        if envelope.message_type is not MessageType.EXECUTION_REQUESTED:
            log.warning("dead letter %s %s dropped", envelope.message_type, envelope.message_id)
            return
        execution_id = envelope.payload.get("execution_id")
        if not isinstance(execution_id, int) or isinstance(execution_id, bool):
            log.warning("dead letter %s has no execution id; dropped", envelope.message_id)
            return
        worker_id = envelope.payload.get("worker_id")
        async with self._platform.db.transaction() as session:
            execution = await executions.get(session, execution_id)
            if execution is None:
                return
            if worker_id is None:
                statuses: tuple[str, ...] = (ExecutionStatus.REQUESTED.value,)
                result = {
                    "succeeded": False,
                    "error": "Scheduling failed",
                    "message": "The scheduling request was dead-lettered; see the executor log",
                    "expired_at": rfc3339(self._platform.clock.now()),
                }
            else:
                if execution.worker is not None and execution.worker != worker_id:
                    return  # a stale dispatch of an execution that now lives elsewhere
                statuses = _HANDED_OFF
                result = {
                    "succeeded": False,
                    "error": "Worker queue TTL expired",
                    "message": (
                        f"Worker {worker_id} did not take execution {execution_id} from its queue "
                        "before the message expired"
                    ),
                    "expired_at": rfc3339(self._platform.clock.now()),
                }
            if await finish_execution(
                session, execution, ExecutionStatus.FAILED, result, from_statuses=statuses
            ):
                log.warning("execution %s failed: %s", execution_id, result["error"])
