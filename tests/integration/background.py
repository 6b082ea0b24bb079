"""A service loop (``run(stop)``) run as a task by a test, stopped at the end, and stepped on the
fake clock."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

from attune.testing.clock import FakeClock


class BackgroundLoop:
    """Start a loop coroutine ``run(stop)`` with :meth:`start_loop`; :meth:`close` ends it."""

    def __init__(self) -> None:
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def start_loop(self, run: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> None:
        self.task = asyncio.create_task(run(self.stop))

    async def close(self) -> None:
        self.stop.set()
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


async def step(clock: FakeClock, seconds: float) -> None:
    """Advance the fake clock, then let the woken loop run its pass and sleep again."""
    clock.advance(seconds)
    for _ in range(20):
        await asyncio.sleep(0)
    await clock.sleeping(1)
