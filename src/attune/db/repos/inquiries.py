"""Inquiry rows (docs/development.md): the API's queries and the inquiry use cases' reads and writes."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from attune.db.models import Inquiry
from attune.db.repos import locking
from attune.domain.enums import InquiryStatus


async def get(session: AsyncSession, inquiry_id: int) -> Inquiry | None:
    """The inquiry with ``inquiry_id``, or None."""
    return await session.get(Inquiry, inquiry_id)


async def get_locked(session: AsyncSession, inquiry_id: int) -> Inquiry | None:
    """The inquiry as it is now, locked where the database can, so answer and expiry cannot race."""
    lock = locking.row_locks(session)
    return await session.get(Inquiry, inquiry_id, with_for_update=lock, populate_existing=True)


async def add(session: AsyncSession, inquiry: Inquiry) -> Inquiry:
    """Insert ``inquiry`` and flush so its id and timestamps are set."""
    session.add(inquiry)
    await session.flush()
    return inquiry


async def delete(session: AsyncSession, inquiry: Inquiry) -> None:
    """Delete ``inquiry`` (flushed with the transaction)."""
    await session.delete(inquiry)


async def expired_ids(session: AsyncSession, now: datetime, *, limit: int = 100) -> list[int]:
    """Ids of pending inquiries whose ``timeout_at`` has passed, oldest deadline first."""
    query = (
        sa.select(Inquiry.id)
        .where(
            Inquiry.status == InquiryStatus.PENDING.value,
            Inquiry.timeout_at.is_not(None),
            Inquiry.timeout_at <= now,
        )
        .order_by(Inquiry.timeout_at, Inquiry.id)
        .limit(limit)
    )
    return [int(value) for value in (await session.execute(query)).scalars()]


async def next_deadline(session: AsyncSession, after: datetime) -> datetime | None:
    """The earliest ``timeout_at`` after ``after`` among pending inquiries (None: there is none)."""
    query = sa.select(sa.func.min(Inquiry.timeout_at)).where(
        Inquiry.status == InquiryStatus.PENDING.value,
        Inquiry.timeout_at.is_not(None),
        Inquiry.timeout_at > after,
    )
    value: datetime | None = (await session.execute(query)).scalar()
    return value


def _newest_first(query: sa.Select[Inquiry]) -> sa.Select[Inquiry]:
    return query.order_by(Inquiry.created.desc(), Inquiry.id.desc())


def list_query(
    *, status: str | None = None, execution: int | None = None, assigned_to: int | None = None
) -> sa.Select[Inquiry]:
    """``GET /inquiries`` (docs/api.md): ``status`` wins over ``execution``; ``assigned_to`` always
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
