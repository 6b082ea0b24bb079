"""What running an action reads besides its execution row: runtimes and their versions, the keys
the action may read, and the packs whose environments a worker prepares."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from attune.db.models import Action, Enforcement, Key, Pack, Runtime, RuntimeVersion
from attune.domain.enums import OwnerType


class RunInputs(NamedTuple):
    """What one run of an action reads in a single statement (:func:`run_inputs`)."""

    #: Changes whenever the action, its runtime or any version of that runtime is written,
    #: inserted or deleted: a definition cached under an equal stamp is current.
    stamp: Hashable
    #: ``pack.storage_path`` of the action's pack (None: not recorded or no such pack).
    storage_path: str | None
    rule_ref: str | None
    trigger_ref: str | None


# Built once: a run executes these on the connection, without the ORM (docs/performance.md).
_RUN_INPUTS = (
    sa.select(
        Action.updated,
        Action.runtime,
        Runtime.updated,
        RuntimeVersion.id,
        RuntimeVersion.updated,
        Pack.storage_path,
        Enforcement.rule_ref,
        Enforcement.trigger_ref,
    )
    .select_from(Action)
    .outerjoin(Runtime, Runtime.id == Action.runtime)
    .outerjoin(RuntimeVersion, RuntimeVersion.runtime == Action.runtime)
    .outerjoin(Pack, Pack.ref == Action.pack_ref)
    # A NULL enforcement id matches no row.
    .outerjoin(Enforcement, Enforcement.id == sa.bindparam("enforcement_id"))
    .where(Action.id == sa.bindparam("action_id"))
)


async def run_inputs(session: AsyncSession, action_id: int, enforcement_id: int | None) -> RunInputs | None:
    """The freshness stamp of an action's definition plus the per-run values beside it (its pack's
    storage path, the enforcement's rule and trigger refs); None when the action is gone.

    One row per version of the action's runtime (one row without versions): the stamp holds
    every version's (id, updated), so a change to any of them is seen whatever the writers'
    clocks say.
    """
    connection = await session.connection()
    result = await connection.execute(_RUN_INPUTS, {"action_id": action_id, "enforcement_id": enforcement_id})
    rows = result.all()
    if not rows:
        return None
    first = rows[0]
    # Sorted here, sparing SQLite a sorter: only the stamp needs an order.
    versions = tuple(sorted((row[3], row[4]) for row in rows if row[3] is not None))
    return RunInputs((first[0], first[1], first[2], versions), first[5], first[6], first[7])


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


class KeyRow(NamedTuple):
    """What running an action needs of one key."""

    id: int
    ref: str
    owner_type: str
    name: str
    encrypted: bool
    encryption_key_hash: str | None
    value: str


_KEYS_FOR = sa.select(
    Key.id, Key.ref, Key.owner_type, Key.name, Key.encrypted, Key.encryption_key_hash, Key.value
).where(
    sa.or_(
        Key.owner_type == OwnerType.SYSTEM.value,
        sa.and_(Key.owner_type == OwnerType.PACK.value, Key.owner_pack == sa.bindparam("pack_id")),
        sa.and_(Key.owner_type == OwnerType.ACTION.value, Key.owner_action == sa.bindparam("action_id")),
    )
)


async def keys_for(session: AsyncSession, action: Action) -> list[KeyRow]:
    """The keys ``action`` may read: system keys, its pack's and its own (unordered)."""
    connection = await session.connection()
    result = await connection.execute(_KEYS_FOR, {"pack_id": action.pack, "action_id": action.id})
    return [KeyRow(*row) for row in result]
