"""Composition root: :class:`Platform` (one per process) and :func:`open_platform`, the only place
that picks implementations from settings. "Runtime" means an action runtime everywhere else
(docs/development.md)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from argon2 import PasswordHasher
from sqlalchemy.ext.asyncio import AsyncSession

from attune.auth.passwords import make_hasher
from attune.auth.tokens import TokenService
from attune.bus.base import Bus
from attune.bus.factory import create_bus
from attune.bus.relay import OutboxRelay
from attune.clock import Clock, SystemClock
from attune.db.changes import install_change_capture
from attune.db.database import Database
from attune.db.outbox import STAGED
from attune.domain import budget, safe_yaml
from attune.domain.crypto import CryptoError, SecretBox
from attune.messaging import topology
from attune.messaging.messages import dispatch_routing
from attune.settings import Settings

if TYPE_CHECKING:
    from attune.operations.control import ManualFastPath

log = logging.getLogger(__name__)

#: session.info key: the dispatches of this transaction handed to a worker of this process after
#: the commit, as ``(worker id, execution id, dispatch message id)``.
HANDOFFS = "attune_local_handoffs"
#: session.info key: callables run once this transaction has committed (:meth:`Platform.on_commit`).
COMMITTED = "attune_on_commit"


class LocalWorker(Protocol):
    """A worker running in this process that takes committed dispatches directly
    (docs/performance.md, "Hand-off to a local worker")."""

    def has_free_slot(self) -> bool:
        """Whether a run handed over now would start without waiting for a free slot."""
        ...

    def take(self, execution_id: int, message_id: str) -> bool:
        """Run a committed dispatch; the claim deletes its outbox row ``message_id``.

        False when the worker is stopping: the row then stays for the outbox relay's scan.
        """
        ...


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
    #: The local workers that take their dispatches without the bus (by worker id).
    local_handoff: dict[int, LocalWorker] = field(default_factory=dict)
    #: Set by an executor in this process: manual runs start in the request's transaction.
    manual_fast_path: ManualFastPath | None = None

    def on_commit(self, session: AsyncSession, callback: Callable[[], None]) -> None:
        """Run ``callback`` once ``session``'s transaction has committed (never if it does not)."""
        session.info.setdefault(COMMITTED, []).append(callback)

    def _run_committed(self, info: dict[Any, Any]) -> None:
        """After-commit hook: the callbacks :meth:`on_commit` registered, in order."""
        for callback in info.get(COMMITTED, ()):
            try:
                callback()
            except Exception:
                log.exception("an after-commit callback failed")

    def stage_handoff(self, session: AsyncSession, worker_id: int, execution_id: int) -> bool:
        """Hand the dispatch of ``execution_id`` staged in ``session`` to the local worker
        ``worker_id`` after the commit, instead of through the relay and the bus.

        The dispatch's outbox row is still inserted with the transaction: it is only kept from
        the relay's publish-after-commit, and the worker's claim deletes it. A crash before the
        claim leaves it in the table, and the relay's scan at the next start sends it as it
        would any other (docs/performance.md, "Hand-off to a local worker"). False (nothing
        changed) when the worker is not here or has no free slot: the bus carries it as usual.
        """
        target = self.local_handoff.get(worker_id)
        if target is None or not target.has_free_slot():
            return False
        staged: list[dict[str, Any]] = session.info.get(STAGED, [])
        exchange, routing_key = dispatch_routing(worker_id)
        for index in range(len(staged) - 1, -1, -1):
            row = staged[index]
            if (
                row["exchange"] == exchange
                and row["routing_key"] == routing_key
                and row["body"]["payload"].get("execution_id") == execution_id
            ):
                del staged[index]
                session.info.setdefault(HANDOFFS, []).append((worker_id, execution_id, row["message_id"]))
                return True
        return False

    def _hand_off_committed(self, info: dict[Any, Any]) -> None:
        """After-commit hook: give each handed-off dispatch to its worker."""
        for worker_id, execution_id, message_id in info.get(HANDOFFS, ()):
            target = self.local_handoff.get(worker_id)
            if target is None or not target.take(execution_id, message_id):
                log.info(
                    "worker %s left before taking execution %s; its dispatch waits for the relay",
                    worker_id,
                    execution_id,
                )


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
    db = Database(
        settings.database.url,
        max_connections=settings.database.max_connections,
        group_commit_window=settings.database.group_commit_window_ms / 1000,
    )
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
    db.add_after_commit(platform._hand_off_committed)
    db.add_after_commit(platform._run_committed)
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
