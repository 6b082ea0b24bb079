"""The retention job (docs/development.md): deletes run-time records past a configurable age, in batches.

It replaces TimescaleDB's retention policies, which drop whole chunks; like them it writes no
history of its own. The deletes therefore run on the session's connection, beneath the ORM
change capture, so purging an execution records no ``DELETE`` history row (its history is past
the cut-off too and goes in the same run).

Each batch is one short transaction (``DELETE … WHERE id IN (SELECT id … LIMIT n)``), so a large
purge never holds SQLite's write lock, or PostgreSQL row locks, for long.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from attune.db.database import Database
from attune.db.repos import retention as retention_rows
from attune.db.types import utcnow
from attune.platform import Platform
from attune.settings import RetentionSettings

log = logging.getLogger(__name__)

#: The tables :func:`purge` reports on, in the order it purges them.
PURGED_TABLES = (
    "execution",
    "inquiry",
    "workflow_execution",
    "enforcement",
    "event",
    "execution_history",
    "worker_history",
)


async def _delete_batches(db: Database, step: retention_rows.PurgeStep, batch_size: int) -> int:
    """Delete the rows of one purge step, ``batch_size`` per transaction."""
    total = 0
    while True:
        async with db.transaction() as session:
            deleted = await retention_rows.delete_batch(session, step, batch_size)
        total += deleted
        if deleted < batch_size:
            return total


async def purge_database(
    db: Database,
    *,
    older_than: timedelta,
    worker_history_older_than: timedelta | None = None,
    batch_size: int = 1000,
    now: datetime | None = None,
) -> dict[str, int]:
    """Delete records older than the cut-off(s) from ``db``; return the rows deleted per table.

    * ``execution``: terminal executions created before the cut-off (running ones are kept);
    * ``inquiry``: inquiries created before the cut-off whose execution no longer exists;
    * ``workflow_execution``: workflow run states (with their ``workflow_item`` rows) created
      before the cut-off whose execution no longer exists;
    * ``enforcement``, ``event``: by ``created``; ``execution_history``: by ``time``;
    * ``worker_history``: by ``time``, against ``worker_history_older_than`` (default: ``older_than``).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    now = now or utcnow()
    cutoff = now - older_than
    worker_cutoff = now - (worker_history_older_than if worker_history_older_than is not None else older_than)
    counts: dict[str, int] = {}
    for step in retention_rows.purge_plan(cutoff=cutoff, worker_cutoff=worker_cutoff):
        counts[step.name] = await _delete_batches(db, step, batch_size)
    return counts


async def purge(
    platform: Platform,
    *,
    older_than: timedelta,
    batch_size: int = 1000,
    worker_history_older_than: timedelta | None = None,
) -> dict[str, int]:
    """Delete events, enforcements, terminal executions, orphaned inquiries and history older than
    ``older_than`` (worker history: ``worker_history_older_than``, default the same), in batches.

    Returns the number of rows deleted per table (keys: :data:`PURGED_TABLES`).
    """
    return await purge_database(
        platform.db,
        older_than=older_than,
        worker_history_older_than=worker_history_older_than,
        batch_size=batch_size,
        now=platform.clock.now(),
    )


def configured_ages(settings: RetentionSettings) -> tuple[timedelta, timedelta] | None:
    """``(older_than, worker_history_older_than)`` from the retention settings, or ``None`` when
    the job is disabled (``max_age_days`` = 0). A worker-history age of 0 keeps it forever."""
    if settings.max_age_days <= 0:
        return None
    worker_days = settings.worker_history_max_age_days
    # "Forever" expressed as an age no row can reach.
    worker_age = timedelta(days=worker_days) if worker_days > 0 else timedelta(days=365_000)
    return timedelta(days=settings.max_age_days), worker_age


class RetentionService:
    """Runs :func:`purge` at start-up and then every ``retention.interval`` seconds."""

    name = "retention"

    async def run(self, platform: Platform, stop: asyncio.Event) -> None:
        ages = configured_ages(platform.settings.retention)
        if ages is None:
            log.info("retention is disabled (retention.max_age_days = 0)")
            await stop.wait()
            return
        older_than, worker_age = ages
        settings = platform.settings.retention
        while not stop.is_set():
            try:
                counts = await purge(
                    platform,
                    older_than=older_than,
                    worker_history_older_than=worker_age,
                    batch_size=settings.batch_size,
                )
            except Exception:
                # A failed pass (database restarting, lock timeout) is retried at the next
                # interval; it must not bring the whole server down.
                log.exception("retention pass failed")
            else:
                if any(counts.values()):
                    log.info("retention purged %s", ", ".join(f"{k}={v}" for k, v in counts.items() if v))
            await platform.clock.wait(stop, settings.interval)
