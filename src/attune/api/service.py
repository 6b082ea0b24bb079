"""The HTTP API as a service: uvicorn serving ``create_app(platform)`` until stopped."""

from __future__ import annotations

import asyncio
import logging

import uvicorn
from fastapi import FastAPI

from attune import bootstrap
from attune.api.app import create_app
from attune.notifier.service import WS_IMPLEMENTATION
from attune.platform import Platform
from attune.services.http import serve_until

log = logging.getLogger(__name__)


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
        config = uvicorn_config(platform, create_app(platform))
        await serve_until(config, stop, what="HTTP server", on_started=lambda: _announce(platform))


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
