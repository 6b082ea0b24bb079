"""Back-pressure on event intake (docs/webhooks.md, "Back-pressure").

Recording an event is cheap next to what it sets off (rules, executions, runs), so a flood of
webhooks can be accepted far faster than the pipeline works them off. In the embedded server the
two share one event loop: the intake then takes the pipeline's time, and the backlog grows
without bound. Intake is therefore bounded by the pipeline's backlog — the events waiting in the
executor's queue plus the executions waiting for a worker (``requested``, ``scheduled``): while
it is at ``server.max_backlog``, a webhook is *held* — its
request sleeps, costing neither CPU nor a database connection — until the backlog is below the
bound again, so callers are slowed to the pipeline's pace rather than answered fast (an answer
invites the next request at once; a flood answered with 429s costs the pipeline more than one
held). After :data:`HOLD_SECONDS`, or when :data:`MAX_HELD` requests are held already, the
receiver answers 429 with ``Retry-After`` instead, before recording anything. (Sensors' events
are not held: they come from the platform's own processes.)

The backlog is read at most every :data:`READ_INTERVAL` seconds (the queue's depth — a passive
declare on RabbitMQ — and one count of waiting executions); events accepted since the last read
are added to it, so a burst between two reads cannot go far past the bound.
"""

from __future__ import annotations

import logging

from starlette.datastructures import State

from attune.bus.base import BusError
from attune.db.repos import executions
from attune.errors import TooManyRequests
from attune.messaging.topology import EXECUTOR_EVENTS_QUEUE
from attune.platform import Platform

log = logging.getLogger(__name__)

#: Seconds between two reads of the executor's queue depth.
READ_INTERVAL = 0.25
#: Seconds a refused caller is told to wait.
RETRY_AFTER = 1
#: Seconds a webhook is held at most while the pipeline is behind (then 429).
HOLD_SECONDS = 10.0
#: Webhooks held at once at most (more are answered 429 at once).
MAX_HELD = 256


class PipelineBehind(TooManyRequests):
    """The pipeline's backlog stayed at ``server.max_backlog`` (429)."""

    def __init__(self, waiting: int, limit: int) -> None:
        super().__init__(
            f"The pipeline is behind ({waiting} events and runs waiting, limit {limit}); retry later",
            RETRY_AFTER,
        )


class EventBacklog:
    """The intake bound of one API process."""

    def __init__(self, platform: Platform, limit: int) -> None:
        self._platform = platform
        self.limit = limit
        self._depth = 0
        self._accepted = 0
        self._read_at: float | None = None
        self._reading = False
        #: Requests held right now.
        self.held = 0

    async def admit(self) -> None:
        """Return once an event may be accepted (counted as accepted): at once while the
        backlog is below the bound (0 = no bound), else when it has come down; raise
        :class:`PipelineBehind` after :data:`HOLD_SECONDS` or when :data:`MAX_HELD` are held."""
        if self.limit <= 0:
            return
        clock = self._platform.clock
        waiting = await self._waiting()
        if waiting >= self.limit:
            if self.held >= MAX_HELD:
                raise PipelineBehind(waiting, self.limit)
            deadline = clock.monotonic() + HOLD_SECONDS
            self.held += 1
            try:
                while waiting >= self.limit:
                    if clock.monotonic() >= deadline:
                        raise PipelineBehind(waiting, self.limit)
                    await clock.sleep(READ_INTERVAL)
                    waiting = await self._waiting()
            finally:
                self.held -= 1
        self._accepted += 1

    async def _waiting(self) -> int:
        """The backlog at the last read, plus the events accepted since."""
        now = self._platform.clock.monotonic()
        if not self._reading and (self._read_at is None or now - self._read_at >= READ_INTERVAL):
            # One read at a time; the requests meanwhile use the last figure.
            self._reading = True
            try:
                async with self._platform.db.session() as session:
                    depth = await executions.waiting_count(session)
                depth += await self._platform.bus.queue_depth(EXECUTOR_EVENTS_QUEUE.name)
            except BusError:
                pass  # no executor has declared its queue yet: no event waits for one
            finally:
                self._reading = False
            self._depth, self._accepted, self._read_at = depth, 0, now
        return self._depth + self._accepted


def backlog_for(state: State, platform: Platform) -> EventBacklog:
    """The application's intake bound, created on first use (no await: race-free)."""
    backlog = getattr(state, "event_backlog", None)
    if not isinstance(backlog, EventBacklog):
        backlog = EventBacklog(platform, platform.settings.server.max_backlog)
        state.event_backlog = backlog
    return backlog
