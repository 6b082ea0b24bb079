"""The HTTP API as a service: uvicorn serving ``create_app(platform)`` until stopped."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Generator

import uvicorn
from fastapi import FastAPI

from attune import bootstrap
from attune.api.app import create_app
from attune.notifier.service import WS_IMPLEMENTATION
from attune.platform import Platform

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the process entry point owns signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def uvicorn_config(platform: Platform, app: FastAPI) -> uvicorn.Config:
    """How uvicorn serves the API.

    Forwarding headers (``X-Forwarded-For``/``-Proto``) are believed from ``server.trusted_proxies``
    only, and not at all when it is empty (uvicorn's own default trusts loopback, which let any
    local process, or a proxy nobody configured, choose the client address; docs/security.md).
    """
    server = platform.settings.server
    return uvicorn.Config(
        app,
        host=server.host,
        port=server.port,
        lifespan="off",
        access_log=False,
        log_level="warning",
        # /api/v1/notifications/ws, through uvicorn's WebSocket support (websockets package).
        ws=WS_IMPLEMENTATION,
        proxy_headers=bool(server.trusted_proxies),
        forwarded_allow_ips=list(server.trusted_proxies) or [],
    )


class ApiService:
    name = "api"

    async def run(self, platform: Platform, stop: asyncio.Event) -> None:
        server = _Server(uvicorn_config(platform, create_app(platform)))
        serving = asyncio.create_task(server.serve())
        stopped = asyncio.create_task(stop.wait())
        if await _started(server, serving, stopped):
            await _announce(platform)
        done, _ = await asyncio.wait({serving, stopped}, return_when=asyncio.FIRST_COMPLETED)
        server.should_exit = True
        await serving
        stopped.cancel()
        if serving in done and not stop.is_set():
            raise RuntimeError("the HTTP server stopped unexpectedly (is the port in use?)")


async def _started(server: uvicorn.Server, *tasks: asyncio.Task[object]) -> bool:
    """Wait until uvicorn listens (True), or until one of ``tasks`` ends first (False)."""
    while not server.started:
        if any(task.done() for task in tasks):
            return False
        await asyncio.sleep(0.02)
    return True


async def _announce(platform: Platform) -> None:
    """Log where the server is and how to log in, once it accepts connections."""
    server = platform.settings.server
    host = "127.0.0.1" if server.host in ("0.0.0.0", "::", "") else server.host
    log.info("Attune is ready at http://%s:%s (API docs: /docs)", host, server.port)
    try:
        hint = await bootstrap.default_login_hint(platform)
    except Exception:
        log.exception("could not check the default user")
        return
    if hint:
        log.info("%s (POST /auth/login, or `attune auth login`)", hint)
