"""Key rows (domain.md §8) and the owner lookups their ownership rules need."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from attune.db.models import Action, Key, Pack, Sensor

#: The owner tables addressable by ref, by ``owner_type`` (identities have no ref).
REF_OWNERS: dict[str, type[Pack] | type[Action] | type[Sensor]] = {
    "pack": Pack,
    "action": Action,
    "sensor": Sensor,
}


async def get_by_ref(session: AsyncSession, ref: str) -> Key | None:
    """The key with ``ref``, or None."""
    result = await session.execute(sa.select(Key).where(Key.ref == ref))
    return result.scalar_one_or_none()


async def name_taken(
    session: AsyncSession, owner_type: str, owner: str | None, name: str, *, except_id: int | None = None
) -> bool:
    """Whether another key of the same owner already uses ``name``."""
    query = sa.select(Key.id).where(
        Key.owner_type == owner_type, Key.owner.is_not_distinct_from(owner), Key.name == name
    )
    if except_id is not None:
        query = query.where(Key.id != except_id)
    return (await session.execute(query.limit(1))).first() is not None


async def owner_id_by_ref(session: AsyncSession, owner_type: str, ref: str) -> int | None:
    """The id of the pack/action/sensor with ``ref``, or None."""
    model = REF_OWNERS[owner_type]
    owner_id: int | None = (await session.execute(sa.select(model.id).where(model.ref == ref))).scalar()
    return owner_id


async def owner_ref_by_id(session: AsyncSession, owner_type: str, owner_id: int) -> str | None:
    """The ref of the pack/action/sensor with ``owner_id``, or None when it does not exist."""
    model = REF_OWNERS[owner_type]
    ref: str | None = (await session.execute(sa.select(model.ref).where(model.id == owner_id))).scalar()
    return ref


def list_query(owner_type: str | None, owner: str | None) -> sa.Select[Key]:
    """Keys filtered by exact owner type and owner, ``ref`` ascending."""
    query = sa.select(Key)
    if owner_type is not None:
        query = query.where(Key.owner_type == owner_type)
    if owner is not None:
        query = query.where(Key.owner == owner)
    return query.order_by(Key.ref.asc())


async def add(session: AsyncSession, key: Key) -> Key:
    """Insert ``key`` and flush so its id and timestamps are set."""
    session.add(key)
    await session.flush()
    return key


async def delete(session: AsyncSession, key: Key) -> None:
    """Delete one key row."""
    await session.delete(key)
    await session.flush()
