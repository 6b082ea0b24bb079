"""Execution policies (the ``policy`` table) and the queue statistics of their slots."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from attune.db.models import Action, Policy, QueueStats
from attune.db.repos import locking

# Serialises the "count recent executions, then insert one" of rate-limited actions across
# executors where the database has row locks (SQLite write transactions are serial already).
_RATE_LIMIT_LOCK_KEY = 0x61747475_6E65


def list_query(pack_ref: str | None = None, action_ref: str | None = None) -> sa.Select[Policy]:
    """Policies, ref ascending; optionally those of one pack or one action."""
    query = sa.select(Policy)
    if pack_ref is not None:
        query = query.where(Policy.pack_ref == pack_ref)
    if action_ref is not None:
        query = query.where(Policy.action_ref == action_ref)
    return query.order_by(Policy.ref, Policy.id)


async def by_ref(session: AsyncSession, ref: str) -> Policy | None:
    result = await session.execute(sa.select(Policy).where(Policy.ref == ref))
    return result.scalar_one_or_none()


async def all_by_id(session: AsyncSession) -> Sequence[Policy]:
    """Every policy, by id."""
    return (await session.execute(sa.select(Policy).order_by(Policy.id))).scalars().all()


@functools.cache
def _fingerprint_query() -> sa.Select[int, int, datetime]:
    # Built once: statements on a run's path cost more to build (and key) than to run.
    return sa.select(sa.func.count(), sa.func.max(Policy.id), sa.func.max(Policy.updated))


async def fingerprint(session: AsyncSession) -> tuple[int, int | None, datetime | None]:
    """``(rows, highest id, latest update)`` of the ``policy`` table: one cheap aggregate that
    differs after any committed insert, update or delete."""
    row = (await session.execute(_fingerprint_query())).one()
    return int(row[0]), row[1], row[2]


async def lock_rate_limits(session: AsyncSession) -> None:
    """Hold the rate-limit lock until the transaction ends (a transaction-level advisory lock
    where the database has one; SQLite's serial write transactions need none)."""
    if locking.row_locks(session):
        await session.execute(sa.select(sa.func.pg_advisory_xact_lock(_RATE_LIMIT_LOCK_KEY)))


async def save_queue_stats(session: AsyncSession, values: Mapping[int, Mapping[str, Any]]) -> None:
    """Upsert ``queue_stats`` rows (docs/development.md): ``{action id: every counter}``.

    Select-then-write keeps it portable across SQLite and PostgreSQL; the single executor is the
    only writer. Actions that no longer exist are skipped (their row would violate the FK).
    """
    if not values:
        return
    ids = list(values)
    existing_actions = set((await session.execute(sa.select(Action.id).where(Action.id.in_(ids)))).scalars())
    rows = {
        row.action_id: row
        for row in (
            await session.execute(sa.select(QueueStats).where(QueueStats.action_id.in_(ids)))
        ).scalars()
    }
    for action_id, counters in values.items():
        if action_id not in existing_actions:
            continue
        row = rows.get(action_id)
        if row is None:
            session.add(QueueStats(action_id=action_id, **counters))
        else:
            for key, value in counters.items():
                setattr(row, key, value)
    await session.flush()
