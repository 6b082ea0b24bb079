"""One page of any listing query, with the total it was cut from (the API's pagination)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession


async def fetch_page(
    session: AsyncSession, query: sa.Select[Any], *, offset: int, limit: int
) -> tuple[Sequence[Any], int]:
    """Run ``query`` (already filtered and ordered) for ``limit`` rows from ``offset``; rows and total."""
    count_query = sa.select(sa.func.count()).select_from(query.order_by(None).subquery())
    total = int((await session.execute(count_query)).scalar_one())
    if limit == 0 or offset >= total:
        return [], total
    rows = (await session.execute(query.offset(offset).limit(limit))).scalars().all()
    return rows, total
