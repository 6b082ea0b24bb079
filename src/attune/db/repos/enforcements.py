"""Enforcement rows (docs/development.md): the API's queries and the executor's."""

from __future__ import annotations

import functools

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from attune.db.models import Enforcement
from attune.db.repos import by_pk, locking
from attune.db.repos.idempotent import add_once


async def get(session: AsyncSession, enforcement_id: int) -> Enforcement | None:
    """The enforcement with ``enforcement_id``, or None."""
    return await by_pk.get(session, Enforcement, enforcement_id)


async def get_locked(session: AsyncSession, enforcement_id: int) -> Enforcement | None:
    """The enforcement, locked for the transaction where the database can."""
    return await locking.get_locked(session, Enforcement, enforcement_id)


async def ids_in_status(session: AsyncSession, status: str) -> list[int]:
    """Ids of the enforcements in ``status``, oldest first."""
    query = sa.select(Enforcement.id).where(Enforcement.status == status).order_by(Enforcement.id)
    return list((await session.execute(query)).scalars())


def list_query(
    *,
    status: str | None = None,
    rule: int | None = None,
    event: int | None = None,
    trigger_ref: str | None = None,
) -> sa.Select[Enforcement]:
    """Enforcements newest first.

    Only the first of ``status`` > ``rule`` > ``event`` that is given applies (docs/api.md);
    ``trigger_ref`` always applies.
    """
    query = sa.select(Enforcement)
    if status is not None:
        query = query.where(Enforcement.status == status)
    elif rule is not None:
        query = query.where(Enforcement.rule == rule)
    elif event is not None:
        query = query.where(Enforcement.event == event)
    if trigger_ref is not None:
        query = query.where(Enforcement.trigger_ref == trigger_ref)
    return query.order_by(Enforcement.created.desc(), Enforcement.id.desc())


async def rules_enforced(session: AsyncSession, event_id: int) -> set[int]:
    """Ids of the rules that already have an enforcement for ``event_id``."""
    rows = await session.execute(_rules_enforced_query(), {"event_id": event_id})
    return {rule for rule in rows.scalars() if rule is not None}


@functools.cache
def _rules_enforced_query() -> sa.Select[int | None]:
    # Built once: statements on a run's path cost more to build (and key) than to run.
    return sa.select(Enforcement.rule).where(
        Enforcement.event == sa.bindparam("event_id"), Enforcement.rule.is_not(None)
    )


async def add_for_event(session: AsyncSession, enforcement: Enforcement) -> bool:
    """Insert ``enforcement`` unless its event already has one for its rule (then False).

    ``uq_enforcement_event_rule`` makes the check race-free on both databases.
    """

    async def exists() -> bool:
        if enforcement.event is None or enforcement.rule is None:
            return False
        return enforcement.rule in await rules_enforced(session, enforcement.event)

    return await add_once(session, enforcement, exists)
