"""Inquiry rows (domain.md §2.4): the API's queries."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from attune.db.models import Inquiry


async def get(session: AsyncSession, inquiry_id: int) -> Inquiry | None:
    """The inquiry with ``inquiry_id``, or None."""
    return await session.get(Inquiry, inquiry_id)


def _newest_first(query: sa.Select[Inquiry]) -> sa.Select[Inquiry]:
    return query.order_by(Inquiry.created.desc(), Inquiry.id.desc())


def list_query(
    *, status: str | None = None, execution: int | None = None, assigned_to: int | None = None
) -> sa.Select[Inquiry]:
    """``GET /inquiries`` (api.md §4.8): ``status`` wins over ``execution``; ``assigned_to`` always
    applies. Newest first."""
    query = sa.select(Inquiry)
    if status is not None:
        query = query.where(Inquiry.status == status)
    elif execution is not None:
        query = query.where(Inquiry.execution == execution)
    if assigned_to is not None:
        query = query.where(Inquiry.assigned_to == assigned_to)
    return _newest_first(query)


def by_status_query(status: str) -> sa.Select[Inquiry]:
    """Inquiries in ``status``, newest first."""
    return _newest_first(sa.select(Inquiry).where(Inquiry.status == status))


def by_execution_query(execution_id: int) -> sa.Select[Inquiry]:
    """The inquiries of one execution, newest first."""
    return _newest_first(sa.select(Inquiry).where(Inquiry.execution == execution_id))
