"""Insert-or-ignore for the rows consumers create from a message (docs/operations.md, "Guarantees").

Messages arrive at least once, so a consumer may try to insert a row a previous delivery already
committed. The unique indexes of revision ``0004_delivery`` refuse it; :func:`add_once` turns that
refusal into "already there" instead of a failed transaction. It flushes inside a SAVEPOINT, which
works on both databases (the SQLite driver runs with ``isolation_level=None`` and our own
``BEGIN``), and keeps the ORM insert so change capture and history still see the row.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from attune.db.models import Base


async def add_once(session: AsyncSession, row: Base, exists: Callable[[], Awaitable[bool]]) -> bool:
    """Insert ``row``; False when ``exists()`` confirms a duplicate refused it.

    Any other integrity error (a vanished foreign key…) is raised as usual.
    """
    try:
        async with session.begin_nested():
            session.add(row)
            await session.flush()
    except IntegrityError:
        if await exists():
            return False
        raise
    return True
