"""The executor service (docs/operations.md): every executor component, run as tasks of one service.

Start-up: declare the executor queues → recover the work a previous process left behind
(``created`` enforcements, ``requested`` executions, retries not yet created, the slots of
open rule executions) → start the consumers and the timers. Shutdown: stop the consumers
(handlers in flight finish), then the background waiters and the timers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from attune.bus.base import Consumer, Handler
from attune.clock import Clock
from attune.executor.completion import CompletionListener
from attune.executor.enforcements import EnforcementProcessor
from attune.executor.events import EventProcessor
from attune.executor.inquiries import InquiryTimeoutMonitor
from attune.executor.liveness import LivenessMonitor
from attune.executor.manual import ManualRuns
from attune.executor.monitors import DeadLetterHandler, ScheduledTimeoutMonitor
from attune.executor.scheduler import Scheduler
from attune.messaging.messages import Envelope, ExecutionStatusChanged
from attune.messaging.topology import (
    DLX_QUEUE,
    ENFORCEMENTS_QUEUE,
    EXECUTION_COMPLETED_QUEUE,
    EXECUTION_REQUESTS_QUEUE,
    EXECUTION_STATUS_QUEUE,
    EXECUTOR_EVENTS_QUEUE,
    QueueSpec,
)
from attune.platform import Platform
from attune.workflow.engine import WorkflowEngine

log = logging.getLogger(__name__)

#: Deliveries each consumer handles at once (docs/operations.md).
PREFETCH = 10


async def _status_changed(envelope: Envelope) -> None:
    """Execution manager: status changes need no executor action; validate and log."""
    change = envelope.payload_as(ExecutionStatusChanged)
    log.debug(
        "execution %s: %s → %s", change.execution_id, change.previous_status.value, change.new_status.value
    )


async def _every(
    interval: Callable[[], float],
    job: Callable[[], Awaitable[Any]],
    stop: asyncio.Event,
    name: str,
    clock: Clock,
) -> None:
    """Run ``job`` now and then every ``interval()`` seconds until ``stop``; errors are logged."""
    while not stop.is_set():
        try:
            await job()
        except Exception:
            log.exception("executor %s failed; trying again next round", name)
        await clock.wait(stop, max(interval(), 0.01))


class ExecutorService:
    """Event processing, enforcement, scheduling, completion, retries and liveness."""

    name = "executor"

    async def run(self, platform: Platform, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set."""
        settings = platform.settings
        enforcements = EnforcementProcessor(platform)
        workflows = WorkflowEngine(platform)
        scheduler = Scheduler(platform, workflows=workflows, admit=enforcements.admit)
        events = EventProcessor(platform, enforcements=enforcements, dispatch=scheduler.dispatch_inline)
        completion = CompletionListener(
            platform, release_slot=enforcements.release_slot, on_finished=workflows.child_finished
        )
        liveness = LivenessMonitor(platform)
        timeouts = ScheduledTimeoutMonitor(platform)
        inquiry_timeouts = InquiryTimeoutMonitor(platform)

        routes: list[tuple[QueueSpec, Handler]] = [
            (EXECUTOR_EVENTS_QUEUE, events.handle),
            (ENFORCEMENTS_QUEUE, enforcements.handle),
            (EXECUTION_REQUESTS_QUEUE, scheduler.handle),
            (EXECUTION_STATUS_QUEUE, _status_changed),
            (EXECUTION_COMPLETED_QUEUE, completion.handle),
        ]
        if settings.message_queue.enable_dlq:
            routes.append((DLX_QUEUE, DeadLetterHandler(platform).handle))
        for spec, _ in routes:
            await platform.bus.declare_queue(spec)

        await enforcements.recover()
        await scheduler.recover()
        await completion.recover()

        consumers: list[Consumer] = []
        timers: list[asyncio.Task[None]] = []
        try:
            for spec, handler in routes:
                consumers.append(await platform.bus.consume(spec.name, handler, prefetch=PREFETCH))
            timers.append(
                asyncio.create_task(
                    _every(
                        lambda: liveness.interval, liveness.sweep, stop, "liveness monitor", platform.clock
                    )
                )
            )
            timers.append(
                asyncio.create_task(
                    _every(
                        lambda: settings.executor.policy_refresh_interval,
                        enforcements.refresh_policies,
                        stop,
                        "policy refresh",
                        platform.clock,
                    )
                )
            )
            # Sleeps until the earliest inquiry deadline (docs/inquiries.md), not every second.
            timers.append(asyncio.create_task(inquiry_timeouts.run(stop)))
            timers.append(asyncio.create_task(workflows.run_timers(stop)))
            if settings.executor.enable_timeout_monitor:
                timers.append(
                    asyncio.create_task(
                        _every(
                            lambda: timeouts.interval,
                            timeouts.sweep,
                            stop,
                            "scheduled-timeout monitor",
                            platform.clock,
                        )
                    )
                )
            # An API in this process (the embedded server) starts manual runs in its own
            # transaction when no policy applies (attune.executor.manual).
            platform.manual_fast_path = ManualRuns(platform, enforcements, scheduler, workflows)
            log.info("executor started")
            await stop.wait()
        finally:
            platform.manual_fast_path = None
            for consumer in consumers:
                with contextlib.suppress(Exception):
                    await consumer.cancel()
            for timer in timers:
                timer.cancel()
            await asyncio.gather(*timers, return_exceptions=True)
            await enforcements.close()
            await scheduler.close()
            await completion.close()
            log.info("executor stopped")
