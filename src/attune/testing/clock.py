"""A fake :class:`~attune.clock.Clock`: time moves only when the test says so.

Typical use: put it on the runtime before starting a service (``runtime.clock = clock``), wait
until the service is parked on the clock (:meth:`FakeClock.sleeping`), then
:meth:`FakeClock.advance` and observe what the service did. See docs/development.md "Time in
tests".
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from datetime import UTC, datetime, timedelta

#: Where a fake clock starts unless told otherwise (a fixed moment keeps tests reproducible).
DEFAULT_START = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)


class FakeClock:
    """Deterministic time for tests.

    ``now()`` and ``monotonic()`` move only through :meth:`advance` (or, with
    ``auto_advance=True``, by exactly the time each sleeper asks for, so code that only sleeps
    on this clock runs through hours of schedule at once). Sleepers whose deadline falls within
    an advance are woken in deadline order (ties in the order they went to sleep).
    """

    def __init__(self, start: datetime | None = None, *, auto_advance: bool = False) -> None:
        moment = start if start is not None else DEFAULT_START
        if moment.tzinfo is None:
            raise ValueError("a fake clock starts at an aware datetime")
        self._start = moment.astimezone(UTC)
        self._elapsed = 0.0
        self._auto_advance = auto_advance
        self._order = itertools.count()
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._changed = asyncio.Event()
        #: Every duration a caller asked to sleep, in order (what a test may assert on).
        self.sleeps: list[float] = []

    # -- the Clock port --------------------------------------------------------------------------

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._elapsed)

    def monotonic(self) -> float:
        return self._elapsed

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        if self._auto_advance:
            self.advance(seconds)
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._elapsed + seconds, next(self._order), future))
        self._notify()
        try:
            await future
        finally:
            if not future.done():
                future.cancel()
            # A cancelled sleeper leaves the heap now, so `pending` counts only real sleepers.
            self._sleepers = [entry for entry in self._sleepers if not entry[2].done()]
            heapq.heapify(self._sleepers)
            self._notify()

    async def wait(self, event: asyncio.Event, seconds: float) -> bool:
        if event.is_set():
            return True
        waiter = asyncio.ensure_future(event.wait())
        sleeper = asyncio.ensure_future(self.sleep(seconds))
        try:
            await asyncio.wait((waiter, sleeper), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (waiter, sleeper):
                task.cancel()
            await asyncio.gather(waiter, sleeper, return_exceptions=True)
        return event.is_set()

    # -- driving it ------------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """How many sleepers are waiting on this clock."""
        return sum(1 for _, _, future in self._sleepers if not future.done())

    def next_deadline(self) -> float | None:
        """Seconds from now until the earliest sleeper is due, or None when nobody sleeps."""
        due = [deadline for deadline, _, future in self._sleepers if not future.done()]
        return max(min(due) - self._elapsed, 0.0) if due else None

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` and wake every sleeper due by then.

        The woken sleepers run at the event loop's next turns; yield (``await
        asyncio.sleep(0)``) or wait for what they do before asserting.
        """
        if seconds < 0:
            raise ValueError("time does not go back")
        self._elapsed += seconds
        while self._sleepers and self._sleepers[0][0] <= self._elapsed:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)
        self._notify()

    async def sleeping(self, count: int = 1, *, within: float = 10.0) -> None:
        """Wait (in real time, at most ``within`` seconds) until ``count`` sleepers are parked."""
        async with asyncio.timeout(within):
            while self.pending < count:
                self._changed.clear()
                await self._changed.wait()

    def _notify(self) -> None:
        self._changed.set()
