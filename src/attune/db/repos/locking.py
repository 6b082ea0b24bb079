"""Row locks that hide the dialect (docs/development.md "Where a query belongs").

PostgreSQL takes ``SELECT … FOR UPDATE``; SQLite has no row locks, but every write transaction
starts with ``BEGIN IMMEDIATE`` (see :mod:`attune.db.database`) and so is serialised already.
Callers say *what* they lock; only this module knows which database does what.
"""

from __future__ import annotations

from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from attune.db.repos import by_pk

M = TypeVar("M")
S = TypeVar("S", bound=sa.Select[Any])


def row_locks(session: AsyncSession) -> bool:
    """Whether the session's database takes row locks (PostgreSQL) or serialises writers (SQLite)."""
    return session.get_bind().dialect.name != "sqlite"


def for_update(session: AsyncSession, query: S, **options: Any) -> S:
    """``query`` locking the rows it reads until the transaction ends, where the database can."""
    return query.with_for_update(**options) if row_locks(session) else query


async def get_locked(session: AsyncSession, model: type[M], ident: Any) -> M | None:
    """The row ``ident`` of ``model``, locked for the transaction where the database can."""
    return await by_pk.get(session, model, ident, lock=row_locks(session))
