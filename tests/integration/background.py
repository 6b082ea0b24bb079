"""A service loop (``run(stop)``) run as a task by a test, and stopped at the end."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any


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
