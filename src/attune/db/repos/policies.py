"""Reading execution policies (the ``policy`` table) for the API."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from attune.db.models import Policy


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
