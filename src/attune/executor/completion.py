"""The completion listener (docs/operations.md).

Terminal transitions themselves are :func:`attune.operations.executions.finish_execution`. The
:class:`CompletionListener` consumes ``ExecutionCompleted``: it frees the execution's
concurrency slot and, for a retriable failure, requests the next attempt after the backoff.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from datetime import timedelta
from typing import Any

from attune.db.repos import executions
from attune.messaging.messages import Envelope, ExecutionCompleted
from attune.operations import retries
from attune.operations.executions import request_retry
from attune.platform import Platform

log = logging.getLogger(__name__)

#: How far back a starting executor looks for failures whose retry was never created.
RECOVERY_WINDOW_SECONDS = 3600.0


class BackgroundTasks:
    """Tasks a component starts and must stop with it (waiters, retry timers)."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str | None = None) -> asyncio.Task[Any]:
        """Run ``coro`` in the background; an exception it raises is logged."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("executor background task %s failed", task.get_name(), exc_info=error)

    def __len__(self) -> int:
        return len(self._tasks)

    async def close(self) -> None:
        """Cancel every task and wait for them to finish."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


class CompletionListener:
    """Consumes ``ExecutionCompleted``: releases the slot, schedules retries (idempotent).

    ``release_slot(execution_id)`` frees the concurrency slot the execution holds, if any.
    ``backoff(retry_count)`` gives the delay before a retry (seconds). ``on_finished(execution_id)``
    runs for the completion of every workflow task, and of any execution whose message does not
    say whether it is one (the workflow engine advances the run of a workflow child).
    """

    def __init__(
        self,
        platform: Platform,
        *,
        release_slot: Callable[[int], Awaitable[None]],
        backoff: Callable[[int], float] = retries.backoff_seconds,
        on_finished: Callable[[int], Awaitable[None]] | None = None,
    ) -> None:
        self._platform = platform
        self._release_slot = release_slot
        # Advances the workflow run a finished child belongs to (WorkflowEngine.child_finished).
        self._on_finished = on_finished
        self._backoff = backoff
        self._tasks = BackgroundTasks()
        # Executions whose retry timer is running, so a redelivery does not start a second one.
        self._pending: set[int] = set()

    async def handle(self, envelope: Envelope) -> None:
        """Handle one ``ExecutionCompleted`` message."""
        payload = envelope.payload_as(ExecutionCompleted)
        await self._release_slot(payload.execution_id)
        # Only a workflow task advances a workflow run; finding out costs a read per completion.
        if self._on_finished is not None and payload.workflow_child is not False:
            await self._on_finished(payload.execution_id)
        if payload.status.value in retries.RETRIABLE_STATUSES:
            await self._maybe_retry(payload.execution_id)

    async def _maybe_retry(self, execution_id: int) -> None:
        if execution_id in self._pending:
            return
        async with self._platform.db.session() as session:
            execution = await executions.get(session, execution_id)
            if execution is None or execution.status not in retries.RETRIABLE_STATUSES:
                return
            if not retries.retries_left(execution):
                return
            policy = await retries.policy_for(session, execution)
            reason = retries.retry_reason(execution, policy) if policy is not None else None
            if (
                reason is None
                or policy is None
                or await retries.existing_retry(session, execution) is not None
            ):
                return
            delay = retries.delay_seconds(execution, policy, self._backoff)
        self._pending.add(execution_id)
        log.info("execution %s failed (%s); retrying in %.1f s", execution_id, reason, delay)
        self._tasks.spawn(self._retry_later(execution_id, reason, delay), name=f"retry-{execution_id}")

    async def _retry_later(self, execution_id: int, reason: str, delay: float) -> None:
        try:
            await self._platform.clock.sleep(delay)
            async with self._platform.db.transaction() as session:
                execution = await executions.get_locked(session, execution_id)
                if execution is None or execution.status not in retries.RETRIABLE_STATUSES:
                    return
                await request_retry(session, execution, box=self._platform.secrets, reason=reason)
        finally:
            self._pending.discard(execution_id)

    async def recover(self, *, window_seconds: float = RECOVERY_WINDOW_SECONDS) -> None:
        """Re-arm retries a previous executor process had scheduled but not yet created.

        Looks at failures of the last ``window_seconds`` that still have retries left.
        """
        since = self._platform.clock.now() - timedelta(seconds=window_seconds)
        async with self._platform.db.session() as session:
            ids = await executions.retriable_ids(session, retries.RETRIABLE_STATUSES, since=since)
        for execution_id in ids:
            await self._maybe_retry(execution_id)

    async def close(self) -> None:
        """Stop pending retry timers (:meth:`recover` re-arms them on the next start)."""
        await self._tasks.close()
