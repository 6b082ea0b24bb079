"""What running an action reads besides its execution row: runtimes and their versions, the keys
the action may read, and the packs whose environments a worker prepares."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from attune.db.models import Action, Key, Pack, Runtime, RuntimeVersion
from attune.domain.enums import OwnerType


async def runtimes(session: AsyncSession) -> Sequence[Runtime]:
    """Every runtime, by id (the first whose file extension matches an entry point wins)."""
    return (await session.execute(sa.select(Runtime).order_by(Runtime.id))).scalars().all()


async def versions_of(session: AsyncSession, runtime_id: int) -> Sequence[RuntimeVersion]:
    """Every version row of one runtime, in table order."""
    query = sa.select(RuntimeVersion).where(RuntimeVersion.runtime == runtime_id)
    return (await session.execute(query)).scalars().all()


async def available_versions_of(session: AsyncSession, runtime_id: int) -> Sequence[RuntimeVersion]:
    """The versions of one runtime marked available, by id."""
    query = (
        sa.select(RuntimeVersion)
        .where(RuntimeVersion.runtime == runtime_id, RuntimeVersion.available.is_(True))
        .order_by(RuntimeVersion.id)
    )
    return (await session.execute(query)).scalars().all()


async def runtimes_of_pack(session: AsyncSession, pack_ref: str) -> Sequence[Runtime]:
    """The runtimes the actions of one pack use, by id."""
    query = (
        sa.select(Runtime)
        .join(Action, Action.runtime == Runtime.id)
        .where(Action.pack_ref == pack_ref)
        .distinct()
        .order_by(Runtime.id)
    )
    return (await session.execute(query)).scalars().all()


async def pack_refs(session: AsyncSession) -> list[str]:
    """The ref of every registered pack, sorted."""
    return list((await session.execute(sa.select(Pack.ref).order_by(Pack.ref))).scalars())


async def keys_for(session: AsyncSession, action: Action) -> Sequence[Key]:
    """The keys ``action`` may read: system keys, its pack's and its own (unordered)."""
    query = sa.select(Key).where(
        sa.or_(
            Key.owner_type == OwnerType.SYSTEM.value,
            sa.and_(Key.owner_type == OwnerType.PACK.value, Key.owner_pack == action.pack),
            sa.and_(Key.owner_type == OwnerType.ACTION.value, Key.owner_action == action.id),
        )
    )
    return (await session.execute(query)).scalars().all()
