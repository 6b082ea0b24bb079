"""Relays committed outbox rows to the bus, oldest first, then deletes them.

Delivery is at-least-once: a crash between publish and delete re-sends the row, so consumers are
idempotent. On PostgreSQL several relays may run at once (``SKIP LOCKED``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import sqlalchemy as sa

from attune.bus.base import Bus
from attune.bus.messages import Envelope
from attune.db.database import Database
from attune.db.models import OutboxMessage
from attune.db.outbox import DIRTY_FLAG

log = logging.getLogger(__name__)


class OutboxRelay:
    """Publishes outbox rows after commit. ``kick()`` wakes it; it also polls as a safety net."""

    def __init__(self, db: Database, bus: Bus, *, batch_size: int = 200, poll_interval: float = 1.0) -> None:
        self._db = db
        self._bus = bus
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        db.add_after_commit(self._after_commit)

    def _after_commit(self, info: dict[Any, Any]) -> None:
        if info.get(DIRTY_FLAG):
            self.kick()

    def kick(self) -> None:
        self._idle.clear()
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Loop until ``stop`` is set, draining the outbox whenever woken."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_interval)
            self._wake.clear()
            try:
                while await self.drain_once() == self._batch_size:
                    pass
            except Exception:
                log.exception("outbox relay failed; retrying")
                await asyncio.sleep(self._poll_interval)
                continue
            if not self._wake.is_set():
                self._idle.set()

    async def drain_once(self) -> int:
        """Publish and delete up to one batch; return how many rows were relayed."""
        async with self._db.transaction() as session:
            query = sa.select(OutboxMessage).order_by(OutboxMessage.id).limit(self._batch_size)
            if not self._db.is_sqlite:
                query = query.with_for_update(skip_locked=True)
            rows = (await session.execute(query)).scalars().all()
            for row in rows:
                await self._bus.publish(row.exchange, row.routing_key, Envelope.model_validate(row.body))
            if rows:
                await session.execute(
                    sa.delete(OutboxMessage).where(OutboxMessage.id.in_([r.id for r in rows]))
                )
        return len(rows)

    async def flush(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109 - mirrors Bus.join
        """Wait until everything committed so far has been handed to the bus (tests, shutdown)."""
        self.kick()
        await asyncio.wait_for(self._idle.wait(), timeout)
