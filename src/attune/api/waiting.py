"""Waiting for runs instead of polling (docs/api.md, "Waiting for a run"; docs/webhooks.md).

A waiting request subscribes to the process's notification feed (the hub the WebSocket and the
event stream share, fed by the bus in every deployment) before it reads what it waits for, so no
change in between is missed. Execution notifications carry the status, so the waiter follows its
runs from them and reads the database once, when they say the runs are terminal, for the answer's
body. A slow safety poll (:data:`SAFETY_POLL`) — and a subscriber that fell behind and lost
notifications — re-reads instead, so a waiter never hangs past a terminal status for long, and
costs one query per interval at most.

Waiting requests hold a slot of :class:`Waiters` (``server.max_waiters``): beyond it the API
answers 429 with ``Retry-After``, so clients that wait cannot exhaust the server or starve the
pipeline that shares its event loop and database.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.datastructures import State

from attune.domain.enums import TERMINAL_EXECUTION_STATUSES
from attune.errors import TooManyRequests
from attune.notifier.hub import Notification, Subscription
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
        super().__init__(
            f"Too many waiting requests (limit {limit}); retry later or do not wait", RETRY_AFTER
        )


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


def about_executions(notification: Notification) -> bool:
    """An execution was created or changed status (its ``payload`` carries the ``status``)."""
    return notification.entity_type == "execution" and notification.notification_type in (
        "execution_created",
        "execution_status_changed",
    )


def status_of(notification: Notification) -> str | None:
    """The execution status a notification reports, if any."""
    payload = notification.data.get("payload")
    status = payload.get("status") if isinstance(payload, dict) else None
    return status if isinstance(status, str) else None


def reports_terminal(notification: Notification) -> bool:
    """The notification reports a terminal execution status."""
    return status_of(notification) in TERMINAL


@contextlib.asynccontextmanager
async def watching(
    state: State, platform: Platform, accept: Callable[[Notification], bool]
) -> AsyncIterator[Subscription]:
    """A subscription to the notifications ``accept`` takes, for the block. Open it before reading
    what it watches. ``accept`` runs at fan-out time and may read state the caller sets later."""
    feed = feed_for(state, platform)
    subscription = await feed.subscribe(accept)
    try:
        yield subscription
    finally:
        subscription.close()


async def wait_on(
    subscription: Subscription,
    seen: Callable[[Notification], bool],
    confirm: Callable[[], Awaitable[bool]],
    seconds: float,
) -> bool:
    """Wait up to ``seconds`` until the runs are over; True when ``confirm`` said so.

    ``seen`` takes each notification, in order, and answers whether they now show the runs over
    (a burst is taken whole first). ``confirm`` reads the database — the answer's body — and says
    whether the runs are over: it runs when the notifications say so, after :data:`SAFETY_POLL`
    seconds of silence, and when the subscription lost notifications.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    dropped = subscription.dropped
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0 or subscription.closed:
            return False
        notification = await subscription.get(timeout=min(remaining, SAFETY_POLL))
        if subscription.closed or (notification is None and loop.time() >= deadline):
            return False
        over = True  # silence: look
        if notification is not None:
            over = seen(notification)
            while subscription.pending():
                more = await subscription.get(timeout=0)
                if more is not None:
                    over = seen(more)
        if subscription.dropped != dropped:
            dropped = subscription.dropped
            over = True
        if over and await confirm():
            return True


#: Executions an :class:`EventRuns` keeps while their enforcement's notification is yet to come.
_STRAYS = 1000


class EventRuns:
    """What the notifications tell about the executions one event causes (a waiting webhook).

    Execution notifications name their enforcement, and an ``enforcement_created`` notification
    names its event: so the runs of the event are followed without reading the database. Both
    carry the trigger's ref, which is what the subscription takes (:meth:`wants`), the event id
    being unknown until the event is recorded. An execution seen before its enforcement (two
    processes relay them) is kept aside until the enforcement shows up.
    """

    def __init__(self, trigger_ref: str, listened: int) -> None:
        self.trigger_ref = trigger_ref
        #: Enabled rules of the trigger when the webhook arrived (0: nothing will run).
        self.listened = listened
        self.event_id: int | None = None
        self._enforcements: set[int] = set()
        self._statuses: dict[int, str] = {}
        self._strays: dict[int, dict[int, str]] = {}

    def wants(self, notification: Notification) -> bool:
        """The subscription's filter (runs at fan-out time)."""
        payload = notification.data.get("payload")
        if not isinstance(payload, dict):
            return False
        if notification.entity_type == "enforcement":
            return (
                notification.notification_type == "enforcement_created"
                and payload.get("trigger_ref") == self.trigger_ref
            )
        return about_executions(notification) and (
            payload.get("trigger_ref") == self.trigger_ref or notification.entity_id in self._statuses
        )

    def seen(self, notification: Notification) -> bool:
        """Take one notification; True when every run known so far is terminal."""
        payload = notification.data.get("payload")
        entity_id = notification.entity_id
        if isinstance(payload, dict) and entity_id is not None:
            if notification.entity_type == "enforcement":
                if payload.get("event") == self.event_id:
                    self._enforcements.add(entity_id)
                    self._statuses.update(self._strays.pop(entity_id, {}))
            elif (status := status_of(notification)) is not None:
                enforcement = payload.get("enforcement")
                if entity_id in self._statuses or enforcement in self._enforcements:
                    self._statuses[entity_id] = status
                elif isinstance(enforcement, int):
                    if len(self._strays) >= _STRAYS:
                        self._strays.clear()  # the safety poll finds what this forgets
                    self._strays.setdefault(enforcement, {})[entity_id] = status
        return self.over()

    def adopt(self, statuses: dict[int, str]) -> None:
        """The runs as the database shows them (they win over the notifications so far)."""
        self._statuses.update(statuses)

    def over(self) -> bool:
        """At least one run and all of them terminal (docs/webhooks.md)."""
        return bool(self._statuses) and all(status in TERMINAL for status in self._statuses.values())
