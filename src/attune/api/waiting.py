"""Waiting for runs instead of polling (docs/api.md, "Waiting for a run"; docs/webhooks.md).

A waiting request subscribes to the process's notification feed (the hub the WebSocket and the
event stream share, fed by the bus in every deployment) and re-reads the database only when a
notification about one of its executions arrives. A slow safety poll (:data:`SAFETY_POLL`)
covers notifications lost to a full subscriber queue or a bus outage, so a waiter never hangs
past a terminal status for long, and costs one query per interval at most.

Waiting requests hold a slot of :class:`Waiters` (``server.max_waiters``): beyond it the API
answers 429 with ``Retry-After``, so clients that wait cannot exhaust the server or starve the
pipeline that shares its event loop and database.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.datastructures import State
from starlette.responses import JSONResponse

from attune.domain.enums import TERMINAL_EXECUTION_STATUSES
from attune.errors import TooManyRequests
from attune.notifier.hub import Notification
from attune.notifier.websocket import feed_for
from attune.platform import Platform

#: Seconds between database re-reads when no notification arrives (a fallback, not the path).
SAFETY_POLL = 2.0
#: Seconds a refused waiter is told to wait before retrying.
RETRY_AFTER = 1
TERMINAL = frozenset(str(status) for status in TERMINAL_EXECUTION_STATUSES)


class WaitersExhausted(TooManyRequests):
    """All ``server.max_waiters`` slots are taken (429 with ``Retry-After``)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"Too many waiting requests (limit {limit}); retry later or do not wait")
        self.retry_after = RETRY_AFTER


class Waiters:
    """A non-blocking counter of waiting requests: a full house refuses instead of queueing."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if self.active >= self.limit:
            raise WaitersExhausted(self.limit)
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1


def waiters_for(state: State, platform: Platform) -> Waiters:
    """The application's waiter bound, created on first use (no await: race-free)."""
    waiters = getattr(state, "waiters", None)
    if not isinstance(waiters, Waiters):
        waiters = Waiters(platform.settings.server.max_waiters)
        state.waiters = waiters
    return waiters


def bounded(platform: Platform, seconds: float) -> float:
    """``seconds`` clamped to ``[0, server.max_wait_seconds]``."""
    return max(0.0, min(float(seconds), float(platform.settings.server.max_wait_seconds)))


def _about_executions(notification: Notification) -> bool:
    return notification.entity_type == "execution" and notification.notification_type in (
        "execution_created",
        "execution_status_changed",
    )


async def wait_until(
    state: State,
    platform: Platform,
    done: Callable[[], Awaitable[bool]],
    seconds: float,
    relevant: Callable[[Notification], bool] = _about_executions,
) -> bool:
    """Wait up to ``seconds`` until ``done()`` holds; True when it does.

    Subscribed before the first check, so a change between the check and the wait is not
    missed; ``done`` runs again on each relevant notification and every :data:`SAFETY_POLL`.
    """
    feed = feed_for(state, platform)
    subscription = await feed.subscribe(lambda n: _about_executions(n) and relevant(n))
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while True:
            if await done():
                return True
            remaining = deadline - loop.time()
            if remaining <= 0 or subscription.closed:
                return False
            await subscription.get(timeout=min(remaining, SAFETY_POLL))
            # Coalesce a burst of notifications into one re-read.
            while subscription.pending():
                await subscription.get(timeout=0)
    finally:
        subscription.close()


def refused(exc: WaitersExhausted) -> JSONResponse:
    """The 429 answer for a full house, with ``Retry-After``."""
    return JSONResponse(
        {"error": exc.message, "code": exc.code},
        status_code=exc.status,
        headers={"Retry-After": str(exc.retry_after)},
    )
