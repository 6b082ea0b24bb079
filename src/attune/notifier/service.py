"""``attune notifier``: the notification WebSocket on its own port (scaled deployment).

Routes (docs/notifications.md): ``WS /ws`` (the protocol of ``attune.notifier.websocket``),
``GET /health`` → ``{"status": "ok"}`` and ``GET /stats`` → ``{"connected_clients": n,
"total_subscriptions": n}``. CORS does not apply to WebSockets, and the two GETs are harmless.
"""

from __future__ import annotations

import asyncio
import logging

import uvicorn
from fastapi import FastAPI, WebSocket

from attune import __version__
from attune.notifier.websocket import feed_for
from attune.platform import Platform
from attune.services.http import serve_until

log = logging.getLogger(__name__)

#: uvicorn's WebSocket implementation on the ``websockets`` package: its sans-I/O variant, since
#: the plain "websockets" one is built on that package's deprecated legacy API.
WS_IMPLEMENTATION = "websockets-sansio"


def create_notifier_app(platform: Platform) -> FastAPI:
    """The notifier's own small application around an open :class:`~attune.platform.Platform`."""
    app = FastAPI(
        title="Attune Notifier", version=__version__, docs_url=None, redoc_url=None, openapi_url=None
    )
    app.state.platform = platform

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await feed_for(app.state, platform).serve(websocket)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/stats")
    async def stats() -> dict[str, int]:
        return feed_for(app.state, platform).stats()

    return app


class NotifierService:
    """Serves :func:`create_notifier_app` until ``stop`` is set."""

    name = "notifier"

    async def run(self, platform: Platform, stop: asyncio.Event) -> None:
        settings = platform.settings.notifier
        config = uvicorn.Config(
            create_notifier_app(platform),
            host=settings.host,
            port=settings.port,
            lifespan="off",
            access_log=False,
            log_level="warning",
            ws=WS_IMPLEMENTATION,
        )
        log.info("Attune notifier listening on %s:%s (/ws)", settings.host, settings.port)
        await serve_until(config, stop, what="notifier server")
