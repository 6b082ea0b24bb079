"""Serving an ASGI application with uvicorn as one of the process's services."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Generator

import uvicorn

from attune.clock import Clock, SystemClock

#: Seconds between two ticks of the server's housekeeping (the ``Date`` header, which has a
#: resolution of one second, and the request limit). uvicorn ticks every 0.1 s, which woke an idle
#: process ten times a second (docs/performance.md, "An idle server that sleeps").
TICK = 1.0


class QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling (the process entry point owns signals), ticking
    once a second; setting ``should_exit`` ends it at once, not at the next tick."""

    def __init__(self, config: uvicorn.Config, *, clock: Clock | None = None) -> None:
        self._exit = asyncio.Event()
        self._exit_requested = False
        self._clock: Clock = clock or SystemClock()
        super().__init__(config)

    @property  # type: ignore[override]
    def should_exit(self) -> bool:
        return self._exit_requested

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        self._exit_requested = value
        if value:
            self._exit.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    async def main_loop(self) -> None:
        # ``on_tick(0)`` refreshes the Date header on every tick (uvicorn: every tenth).
        while not await self.on_tick(0):
            await self._clock.wait(self._exit, TICK)


async def serve_until(
    config: uvicorn.Config,
    stop: asyncio.Event,
    *,
    what: str,
    on_started: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Serve ``config`` until ``stop`` is set; ``on_started`` runs once uvicorn listens.

    A server that ends by itself (a port in use) raises, naming ``what`` stopped.
    """
    server = QuietServer(config)
    serving = asyncio.create_task(server.serve())
    stopped = asyncio.create_task(stop.wait())
    if on_started is not None and await _started(server, serving, stopped):
        await on_started()
    done, _ = await asyncio.wait({serving, stopped}, return_when=asyncio.FIRST_COMPLETED)
    server.should_exit = True
    await serving
    stopped.cancel()
    if serving in done and not stop.is_set():
        raise RuntimeError(f"the {what} stopped unexpectedly (is the port in use?)")


async def _started(server: uvicorn.Server, *tasks: asyncio.Task[object]) -> bool:
    """Wait until uvicorn listens (True), or until one of ``tasks`` ends first (False)."""
    while not server.started:
        if any(task.done() for task in tasks):
            return False
        await asyncio.sleep(0.02)
    return True
