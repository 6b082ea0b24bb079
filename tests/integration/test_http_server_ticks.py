"""The HTTP server's housekeeping ticks once a second, not ten times (docs/performance.md "An idle
server that sleeps"), and a stop request ends it at once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import uvicorn

from attune.services import http
from attune.services.http import QuietServer
from attune.testing.clock import FakeClock
from attune.testing.deployment import free_port


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    raise AssertionError("no request is made")


async def test_an_idle_server_ticks_once_a_second_and_stops_when_asked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = FakeClock()
    config = uvicorn.Config(_app, host="127.0.0.1", port=free_port(), lifespan="off", log_level="warning")
    server = QuietServer(config, clock=clock)
    ticks: list[float] = []
    real = QuietServer.on_tick

    async def counted(self: QuietServer, counter: int) -> bool:
        ticks.append(clock.monotonic())
        return await real(self, counter)

    monkeypatch.setattr(QuietServer, "on_tick", counted)
    task = asyncio.create_task(server.serve())
    try:
        await clock.sleeping(1)
        assert clock.next_deadline() == http.TICK == 1.0
        for _ in range(3):
            clock.advance(1.0)
            await clock.sleeping(1)
        assert ticks == [0.0, 1.0, 2.0, 3.0]
        assert dict(server.server_state.default_headers)[b"date"]
    finally:
        server.should_exit = True
        async with asyncio.timeout(5):
            await task  # no tick of the fake clock needed
