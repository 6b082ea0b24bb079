"""A service loop (``run(stop)``) run as a task by a test, stopped at the end, and stepped on the
fake clock."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from attune.testing.clock import FakeClock

#: A service loop: runs until its ``stop`` event is set.
Run = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


class BackgroundLoop:
    """Start a loop coroutine ``run(stop)`` with :meth:`start_loop`; :meth:`close` ends it (or
    :meth:`stop_loop`, for a loop that ends on ``stop`` by itself)."""

    def __init__(self) -> None:
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def start_loop(self, run: Run) -> None:
        self.task = asyncio.create_task(run(self.stop))

    async def close(self) -> None:
        """Cancel the loop: what it would do on ``stop`` does not run (as in a crash), and a loop
        that sleeps on the fake clock ends too."""
        self.stop.set()
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    async def stop_loop(self) -> None:
        """Set ``stop`` and wait for the loop to end by itself (its shutdown path runs; a loop
        that fails raises here)."""
        self.stop.set()
        assert self.task is not None
        await self.task


@contextlib.asynccontextmanager
async def running(run: Run) -> AsyncIterator[BackgroundLoop]:
    """``run(stop)`` as a task for the block, stopped (:meth:`BackgroundLoop.stop_loop`) at its end."""
    loop = BackgroundLoop()
    loop.start_loop(run)
    try:
        yield loop
    finally:
        await loop.stop_loop()


async def step(clock: FakeClock, seconds: float) -> None:
    """Advance the fake clock, then let the woken loop run its pass and sleep again."""
    clock.advance(seconds)
    for _ in range(20):
        await asyncio.sleep(0)
    await clock.sleeping(1)
