"""Process entry points: the embedded server (everything) or one service alone."""

from __future__ import annotations

import logging

import uvicorn

from attune.api.app import create_app
from attune.bootstrap import bootstrap
from attune.db.migrate import upgrade
from attune.errors import ConfigError
from attune.runtime import open_runtime
from attune.settings import Settings

log = logging.getLogger(__name__)


def check_deployment(settings: Settings, *, embedded: bool) -> None:
    """Refuse a memory bus outside the embedded server: its messages would never leave the process."""
    if not embedded and settings.message_queue.url.startswith("memory://"):
        raise ConfigError(
            "message_queue.url is memory:// but only part of Attune runs in this process; "
            "use `attune server` or configure an amqp:// URL (ATTUNE__MESSAGE_QUEUE__URL)"
        )


async def run_server(settings: Settings, *, embedded: bool) -> None:
    """Migrate (embedded), bootstrap, then serve HTTP until interrupted."""
    check_deployment(settings, embedded=embedded)
    if embedded:
        await upgrade(settings.database.url)
    async with open_runtime(settings) as runtime:
        await bootstrap(runtime)
        app = create_app(runtime)
        config = uvicorn.Config(
            app,
            host=settings.server.host,
            port=settings.server.port,
            lifespan="off",
            access_log=False,
            log_level="warning",
        )
        log.info("Attune listening on %s:%s", settings.server.host, settings.server.port)
        await uvicorn.Server(config).serve()
