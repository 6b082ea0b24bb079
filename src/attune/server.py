"""Process entry points: the embedded server (every service) or one service alone."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Sequence

from attune.api.service import ApiService
from attune.bootstrap import bootstrap
from attune.errors import ConfigError
from attune.platform import open_platform
from attune.services.base import Service
from attune.services.memory import pin_malloc_thresholds, release_free_memory
from attune.services.supervisor import run_services
from attune.settings import Settings
from attune.startup import check_startup

log = logging.getLogger(__name__)


def _executor() -> Service:
    from attune.executor.service import ExecutorService

    return ExecutorService()


def _worker() -> Service:
    from attune.worker.service import WorkerService

    return WorkerService()


def _sensor() -> Service:
    from attune.sensor.service import SensorService

    return SensorService()


def _retention() -> Service:
    from attune.retention import RetentionService

    return RetentionService()


def _notifier() -> Service:
    from attune.notifier.service import NotifierService

    return NotifierService()


#: Service name → factory (imports are deferred so one service's process loads only its code).
SERVICE_FACTORIES: dict[str, Callable[[], Service]] = {
    "api": ApiService,
    "executor": _executor,
    "worker": _worker,
    "sensor": _sensor,
    "notifier": _notifier,
    "retention": _retention,
}

#: What ``attune server`` runs, in start order.
EMBEDDED = ("api", "executor", "worker", "sensor", "retention")


def check_deployment(settings: Settings, *, embedded: bool) -> None:
    """Refuse a memory bus outside the embedded server: its messages would never leave the process."""
    if not embedded and settings.message_queue.url.startswith("memory://"):
        raise ConfigError(
            "message_queue.url is memory:// but only part of Attune runs in this process; "
            "use `attune server` or configure an amqp:// URL (ATTUNE__MESSAGE_QUEUE__URL)"
        )


def embedded_services() -> list[Service]:
    return [SERVICE_FACTORIES[name]() for name in EMBEDDED if name in SERVICE_FACTORIES]


async def run_server(settings: Settings, *, services: Sequence[str] | None = None) -> None:
    """Run ``services`` (default: all of them, embedded) until SIGINT/SIGTERM.

    The embedded server migrates the database itself; a scaled deployment runs
    ``attune db upgrade`` once instead.
    """
    embedded = services is None
    check_deployment(settings, embedded=embedded)
    # The event loop shares the GIL with the database driver threads (aiosqlite runs every
    # statement on a thread). With the default 5 ms switch interval the loop waits up to 5 ms for
    # the GIL after each statement; 0.5 ms keeps database round trips short.
    sys.setswitchinterval(0.0005)
    # Argon2's 19 MiB per login would otherwise stay resident (docs/performance.md "Idle RSS").
    pin_malloc_thresholds()
    if embedded:
        # Imported here: Alembic (and Mako) cost a scaled service's process ≈ 6 MiB it never uses.
        from attune.db.migrate import upgrade

        await upgrade(settings.database.url)
        release_free_memory()  # what the migrations' transient objects left in the heap
    chosen = embedded_services() if services is None else [SERVICE_FACTORIES[name]() for name in services]
    serves_http = embedded or "api" in (services or ())
    async with open_platform(settings) as platform:
        if serves_http:
            await bootstrap(platform)
        # After bootstrap (which may create the development user), before anything listens.
        await check_startup(platform, serves_http=serves_http)
        stop = platform.stop
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await run_services(platform, chosen, stop)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
