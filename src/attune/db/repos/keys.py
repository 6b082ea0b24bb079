"""Key rows (docs/security.md) and the owner lookups their ownership rules need."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from attune.db.models import Action, Key, Pack, Sensor
from attune.domain.enums import OwnerType
from attune.domain.keyrefs import KeyValue

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


async def for_templates(
    session: AsyncSession,
    wanted: Iterable[tuple[str, str]],
    *,
    pack_id: int | None,
    identity_id: int | None,
) -> dict[tuple[str, str], KeyValue]:
    """The keys a template may read, by ``(scope, name)`` (docs/rules.md "Keys in templates").

    The one place that decides what a rule or an execution may read: ``system`` keys; ``pack``
    keys of the rule's/action's own pack; ``user`` keys of the identity the execution runs for.
    Anything else is simply not found (the template sees an empty value).
    """
    names: dict[str, set[str]] = {}
    for scope, name in wanted:
        names.setdefault(scope, set()).add(name)
    clauses = []
    if names.get("system"):
        clauses.append(sa.and_(Key.owner_type == OwnerType.SYSTEM.value, Key.name.in_(names["system"])))
    if names.get("pack") and pack_id is not None:
        clauses.append(
            sa.and_(
                Key.owner_type == OwnerType.PACK.value, Key.owner_pack == pack_id, Key.name.in_(names["pack"])
            )
        )
    if names.get("user") and identity_id is not None:
        clauses.append(
            sa.and_(
                Key.owner_type == OwnerType.IDENTITY.value,
                Key.owner_identity == identity_id,
                Key.name.in_(names["user"]),
            )
        )
    if not clauses:
        return {}
    scope_of = {
        OwnerType.SYSTEM.value: "system",
        OwnerType.PACK.value: "pack",
        OwnerType.IDENTITY.value: "user",
    }
    rows = (await session.execute(sa.select(Key).where(sa.or_(*clauses)))).scalars()
    return {
        (scope_of[row.owner_type], row.name): KeyValue(row.value, row.encrypted, row.encryption_key_hash)
        for row in rows
    }


@dataclass(frozen=True)
class KeyVisibility:
    """Which keys a caller may list (docs/security.md "Ownership").

    ``own``: keys owned by ``identity_id``; ``shared``: every key not owned by an identity;
    ``packs``: keys of these packs (pack keys and their actions' and sensors' keys);
    ``action``: an execution token's ``(pack_id, action_id)`` — system keys, its pack's, its own.
    """

    identity_id: int | None = None
    everything: bool = False
    own: bool = False
    shared: bool = False
    packs: frozenset[str] = frozenset()
    action: tuple[int | None, int | None] | None = None


def key_pack_ref(key: Key) -> str | None:
    """The pack a pack-, action- or sensor-owned key belongs to."""
    if key.owner_type == OwnerType.PACK.value:
        return key.owner_pack_ref
    ref = key.owner_action_ref if key.owner_type == OwnerType.ACTION.value else key.owner_sensor_ref
    if key.owner_type in (OwnerType.ACTION.value, OwnerType.SENSOR.value) and ref and "." in ref:
        return ref.split(".", 1)[0]
    return None


def restrict_visible(query: sa.Select[Key], visibility: KeyVisibility) -> sa.Select[Key]:
    """``query`` limited to the keys ``visibility`` admits."""
    if visibility.everything:
        return query
    clauses: list[sa.ColumnElement[bool]] = []
    if visibility.action is not None:
        pack_id, action_id = visibility.action
        clauses.append(Key.owner_type == OwnerType.SYSTEM.value)
        if pack_id is not None:
            clauses.append(sa.and_(Key.owner_type == OwnerType.PACK.value, Key.owner_pack == pack_id))
        if action_id is not None:
            clauses.append(sa.and_(Key.owner_type == OwnerType.ACTION.value, Key.owner_action == action_id))
        return query.where(sa.or_(*clauses))
    if visibility.own and visibility.identity_id is not None:
        clauses.append(
            sa.and_(Key.owner_type == OwnerType.IDENTITY.value, Key.owner_identity == visibility.identity_id)
        )
    if visibility.shared:
        clauses.append(Key.owner_type != OwnerType.IDENTITY.value)
    if visibility.packs:
        packs = sorted(visibility.packs)
        clauses.append(sa.and_(Key.owner_type == OwnerType.PACK.value, Key.owner_pack_ref.in_(packs)))
        for pack in packs:
            prefix = pack.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + ".%"
            clauses.append(
                sa.and_(
                    Key.owner_type == OwnerType.ACTION.value, Key.owner_action_ref.like(prefix, escape="\\")
                )
            )
            clauses.append(
                sa.and_(
                    Key.owner_type == OwnerType.SENSOR.value, Key.owner_sensor_ref.like(prefix, escape="\\")
                )
            )
    if not clauses:
        return query.where(sa.false())
    return query.where(sa.or_(*clauses))
