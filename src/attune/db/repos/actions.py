"""Action rows, plus the small lookups every definition repository shares.

``pack_by_ref``/``runtime_by_id`` and ``apply_changes`` live here because actions are the first
definition that needs them; the trigger, sensor and rule repositories import them.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from attune.db.models import Action, Pack, QueueStats, Runtime
from attune.db.repos import by_pk
from attune.domain.refs import is_component_ref
from attune.errors import Unprocessable


def apply_changes(row: Any, changes: Mapping[str, Any]) -> bool:
    """Set every attribute whose value differs; return True when anything changed.

    ``None`` values are skipped (absent and null both mean "leave unchanged", docs/api.md), and
    untouched rows are not flushed, so an empty update does not bump ``updated``.
    """
    changed = False
    for name, value in changes.items():
        if value is None or getattr(row, name) == value:
            continue
        setattr(row, name, value)
        changed = True
    return changed


async def pack_by_ref(session: AsyncSession, ref: str) -> Pack | None:
    """The pack with this ref, or None."""
    return (await session.execute(sa.select(Pack).where(Pack.ref == ref))).scalar_one_or_none()


async def runtime_by_id(session: AsyncSession, runtime_id: int) -> Runtime | None:
    """The runtime with this id, or None."""
    return await by_pk.get(session, Runtime, runtime_id)


async def runtime_name_and_config(session: AsyncSession, runtime_id: int) -> tuple[str, Any] | None:
    """The runtime's ``(name, execution_config)``, or None: what scheduling reads of it, without
    loading the row (docs/performance.md, "Rows by id")."""
    row = (await session.execute(_runtime_name_query(), {"runtime_id": runtime_id})).one_or_none()
    return (row[0], row[1]) if row is not None else None


@functools.cache
def _runtime_name_query() -> sa.Select[Any]:
    table = Runtime.__table__
    return sa.select(table.c.name, table.c.execution_config).where(table.c.id == sa.bindparam("runtime_id"))


async def get(session: AsyncSession, action_id: int) -> Action | None:
    """The action with this id, or None."""
    return await by_pk.get(session, Action, action_id)


async def by_ref(session: AsyncSession, ref: str) -> Action | None:
    """The action with this ref, or None."""
    return (await session.execute(sa.select(Action).where(Action.ref == ref))).scalar_one_or_none()


async def all_refs(session: AsyncSession) -> set[str]:
    """Every action ref (workflow validation checks task actions against it)."""
    return set((await session.execute(sa.select(Action.ref))).scalars())


def list_query(*, pack_id: int | None = None) -> sa.Select[Any]:
    """Actions ordered by ref, optionally only those of one pack."""
    query = sa.select(Action).order_by(Action.ref, Action.id)
    if pack_id is not None:
        query = query.where(Action.pack == pack_id)
    return query


async def create(session: AsyncSession, **values: Any) -> Action:
    """Insert an action and return it with its id and timestamps."""
    action = Action(**values)
    session.add(action)
    await session.flush()
    return action


async def save(session: AsyncSession, row: Any) -> None:
    """Flush pending changes of ``row`` and reload it (so ``updated`` is current)."""
    await session.flush()
    await session.refresh(row)


async def delete(session: AsyncSession, action: Action) -> None:
    """Delete an action; rules keep ``action_ref`` with ``action = NULL`` (FK SET NULL)."""
    await session.execute(sa.delete(Action).where(Action.id == action.id))


async def queue_stats(session: AsyncSession, action_id: int) -> QueueStats | None:
    """The queue counters of an action, or None when it never queued."""
    return await session.get(QueueStats, action_id)


def check_ref_format(entity: str, ref: str) -> None:
    """The portable form of the ``<entity>_ref_format`` CHECK: lowercase ``pack.name``, one dot.

    Raises ``Unprocessable("Validation constraint failed: <entity>_ref_format")`` (docs/api.md).
    """
    if not is_component_ref(ref):
        raise Unprocessable(f"Validation constraint failed: {entity}_ref_format")
