"""Runtime rows and their versions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from attune.db.models import Action, Runtime, RuntimeVersion
from attune.domain.runtimes import canonical_runtime_name

#: Columns the runtime API may change (docs/development.md).
UPDATABLE = ("description", "name", "distributions", "installation", "execution_config")


async def by_ref(session: AsyncSession, ref: str) -> Runtime | None:
    result = await session.execute(sa.select(Runtime).where(Runtime.ref == ref))
    return result.scalar_one_or_none()


def list_query(pack_id: int | None = None) -> sa.Select[Runtime]:
    """Runtimes (optionally of one pack), ref ascending."""
    query = sa.select(Runtime)
    if pack_id is not None:
        query = query.where(Runtime.pack == pack_id)
    return query.order_by(Runtime.ref, Runtime.id)


async def versions(session: AsyncSession, runtime_id: int) -> Sequence[RuntimeVersion]:
    """A runtime's versions, newest first (major/minor/patch descending, unparseable last)."""
    query = (
        sa.select(RuntimeVersion)
        .where(RuntimeVersion.runtime == runtime_id)
        .order_by(
            RuntimeVersion.version_major.desc().nulls_last(),
            RuntimeVersion.version_minor.desc().nulls_last(),
            RuntimeVersion.version_patch.desc().nulls_last(),
            RuntimeVersion.version.desc(),
        )
    )
    return (await session.execute(query)).scalars().all()


async def create(session: AsyncSession, values: dict[str, Any]) -> Runtime:
    runtime = Runtime(**values)
    session.add(runtime)
    await session.flush()
    return runtime


async def update(session: AsyncSession, runtime: Runtime, values: dict[str, Any]) -> bool:
    """Apply the values that differ; return whether anything changed."""
    changed = False
    for key, value in values.items():
        if key not in UPDATABLE:
            raise ValueError(f"runtime column '{key}' is not updatable")
        if getattr(runtime, key) != value:
            setattr(runtime, key, value)
            changed = True
    if changed:
        await session.flush()
    return changed


async def action_count(session: AsyncSession, runtime_id: int) -> int:
    """How many actions run on the runtime (they block its deletion)."""
    query = sa.select(sa.func.count()).select_from(Action).where(Action.runtime == runtime_id)
    return int((await session.execute(query)).scalar_one())


async def delete(session: AsyncSession, runtime_id: int) -> None:
    """Delete the row; its versions and the sensors using it cascade."""
    await session.execute(sa.delete(Runtime).where(Runtime.id == runtime_id))


async def all_rows(session: AsyncSession) -> Sequence[Runtime]:
    """Every runtime row, by id."""
    return (await session.execute(sa.select(Runtime).order_by(Runtime.id))).scalars().all()


async def ids(session: AsyncSession) -> tuple[int, ...]:
    """The ids of every runtime row, ascending."""
    return tuple((await session.execute(sa.select(Runtime.id).order_by(Runtime.id))).scalars())


async def versions_with_runtimes(session: AsyncSession) -> list[tuple[RuntimeVersion, Runtime]]:
    """Every runtime version with its runtime row, by version id."""
    query = (
        sa.select(RuntimeVersion, Runtime)
        .join(Runtime, RuntimeVersion.runtime == Runtime.id)
        .order_by(RuntimeVersion.id)
    )
    return [(version, row) for version, row in (await session.execute(query)).all()]


async def set_version_availability(
    session: AsyncSession, version_id: int, available: bool, *, now: datetime
) -> None:
    """Record the result of verifying a runtime version on this host."""
    await session.execute(
        sa.update(RuntimeVersion)
        .where(RuntimeVersion.id == version_id)
        .values(available=available, verified_at=now, updated=now)
    )


async def resolve(session: AsyncSession, runtime_ref: str) -> Runtime | None:
    """A runtime by ref, else by alias-equal name (docs/packs.md, runner resolution)."""
    row = await by_ref(session, runtime_ref)
    if row is not None:
        return row
    wanted = canonical_runtime_name(runtime_ref)
    for candidate in await all_rows(session):
        if canonical_runtime_name(candidate.name) == wanted:
            return candidate
    return None
