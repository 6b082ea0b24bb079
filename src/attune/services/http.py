"""Serving an ASGI application with uvicorn as one of the process's services."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Generator

import uvicorn


class QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: the process entry point owns signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


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
