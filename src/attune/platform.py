"""Composition root: :class:`Platform` (one per process) and :func:`open_platform`, the only place
that picks implementations from settings. "Runtime" means an action runtime everywhere else
(docs/development.md)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from argon2 import PasswordHasher

from attune.auth.passwords import make_hasher
from attune.auth.tokens import TokenService
from attune.bus.base import Bus
from attune.bus.factory import create_bus
from attune.bus.relay import OutboxRelay
from attune.clock import Clock, SystemClock
from attune.db.changes import install_change_capture
from attune.db.database import Database
from attune.domain import budget, safe_yaml
from attune.domain.crypto import CryptoError, SecretBox
from attune.messaging import topology
from attune.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Platform:
    """Everything a service needs, built once per process from :class:`Settings`."""

    settings: Settings
    db: Database
    bus: Bus
    relay: OutboxRelay
    tokens: TokenService
    hasher: PasswordHasher
    secrets: SecretBox | None
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    #: Ids of the workers running in this process. While the process runs they are alive,
    #: whatever their heartbeat says: a busy event loop can delay a heartbeat write, and
    #: abandoning the executions of a worker that is plainly still here would be wrong.
    local_workers: set[int] = field(default_factory=set)
    #: Where services read the time and sleep (a fake clock in tests: docs/development.md).
    clock: Clock = field(default_factory=SystemClock)


def build_secret_box(settings: Settings) -> SecretBox | None:
    key = settings.security.encryption_key
    if not key:
        return None
    try:
        return SecretBox(key)
    except CryptoError:
        log.warning("security.encryption_key is unusable; encrypted keys are disabled")
        return None


@contextlib.asynccontextmanager
async def open_platform(settings: Settings, *, clock: Clock | None = None) -> AsyncIterator[Platform]:
    """Connect the database and bus, start the outbox relay; undo it all on exit.

    ``clock`` replaces the system clock for the services (tests pass a fake one).
    """
    # Process-wide: templates and YAML are evaluated deep inside pure code (docs/security.md).
    budget.configure(settings.limits.render_limits())
    safe_yaml.configure(settings.limits.yaml_limits())
    db = Database(settings.database.url, max_connections=settings.database.max_connections)
    install_change_capture(db)
    # A process may start before its database or broker (containers): both are waited for, with
    # backoff and a log line, instead of failing at the first refused connection.
    await db.wait_ready()
    bus = create_bus(settings.message_queue.url, prefix=settings.message_queue.prefix)
    await bus.start()
    # Declared by every process up front, so a message published before its consumer starts (a
    # rule created while the sensor service boots) waits in its queue instead of being dropped.
    for spec in topology.SHARED_QUEUES:
        await bus.declare_queue(spec)
    # The relay keeps the clock the platform is opened with (tests that swap ``platform.clock``
    # afterwards leave it on the system clock: its safety-net timers never need a fake one).
    chosen = clock or SystemClock()
    relay = OutboxRelay(db, bus, clock=chosen)
    secret = settings.security.jwt_secret or "attune-insecure-default-secret-change-me-please!"
    if not settings.security.jwt_secret:
        log.warning("security.jwt_secret is not set; using an insecure default")
    platform = Platform(
        settings=settings,
        db=db,
        bus=bus,
        relay=relay,
        tokens=TokenService(
            secret,
            access_ttl=settings.security.jwt_access_expiration,
            refresh_ttl=settings.security.jwt_refresh_expiration,
        ),
        hasher=make_hasher(),
        secrets=build_secret_box(settings),
        clock=chosen,
    )
    relay_task = asyncio.create_task(relay.run(platform.stop), name="outbox-relay")
    try:
        yield platform
    finally:
        platform.stop.set()
        with contextlib.suppress(Exception):
            await relay.close()
            if not relay.settling:
                # A settling bus has no consumers left: the rows wait for the next start.
                await relay.drain_once()
        relay_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relay_task
        await bus.close()
        await db.dispose()
