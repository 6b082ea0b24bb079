"""Registering a service's ``worker`` row and keeping it alive: one path for workers and sensors.

Each call is one transaction. The row is upserted by name, so a restarted process keeps its id
(and therefore its queues); see :func:`attune.db.repos.workers.upsert`.
"""

from __future__ import annotations

from datetime import datetime

from attune.db.database import Database
from attune.db.repos import workers
from attune.db.repos.workers import Registration
from attune.db.types import utcnow
from attune.domain.enums import WorkerStatus

__all__ = ["Registration", "register", "set_state"]


async def register(
    db: Database, registration: Registration, *, now: datetime | None = None
) -> tuple[int, str | None]:
    """Upsert the row (active, heartbeat ``now``, default the wall clock); its id and the previous
    process's boot token."""
    async with db.transaction() as session:
        return await workers.upsert(session, registration, now=now or utcnow())


async def set_state(
    db: Database,
    worker_id: int,
    *,
    status: WorkerStatus | None = None,
    heartbeat: bool = True,
    now: datetime | None = None,
) -> None:
    """Heartbeat (``heartbeat``) and/or change the status of a registered row at ``now``."""
    async with db.transaction() as session:
        await workers.set_state(session, worker_id, now=now or utcnow(), status=status, heartbeat=heartbeat)
