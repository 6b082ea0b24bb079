"""Pack rows: lookups, listing, create/update/delete and per-pack component counts."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from attune.db.models import Action, Pack, Policy, Rule, Sensor, Trigger, WorkflowDefinition
from attune.db.repos import by_pk
from attune.settings import Settings

#: Columns the pack API may change (docs/development.md).
UPDATABLE = (
    "label",
    "description",
    "version",
    "conf_schema",
    "config",
    "meta",
    "tags",
    "runtime_deps",
    "dependencies",
    "is_standard",
)


async def get(session: AsyncSession, pack_id: int) -> Pack | None:
    return await by_pk.get(session, Pack, pack_id)


async def config_of(session: AsyncSession, pack_id: int) -> Any:
    """The pack's ``config`` (None: no such pack, or none set), read without loading the row."""
    return (await session.execute(_config_query(), {"pack_id": pack_id})).scalar_one_or_none()


@functools.cache
def _config_query() -> sa.Select[Any]:
    # Built once: read for every rule evaluation (docs/performance.md, "Rows by id").
    # The table's columns, not the mapped class's: a plain Core read (no ORM loading), cheaper.
    table = Pack.__table__
    return sa.select(table.c.config).where(table.c.id == sa.bindparam("pack_id"))


async def by_ref(session: AsyncSession, ref: str) -> Pack | None:
    result = await session.execute(sa.select(Pack).where(Pack.ref == ref))
    return result.scalar_one_or_none()


async def storage_path(session: AsyncSession, ref: str) -> str | None:
    """Where the pack's files were stored at registration (None: not recorded or no such pack)."""
    return await session.scalar(sa.select(Pack.storage_path).where(Pack.ref == ref))


def list_query() -> sa.Select[Pack]:
    """Every pack, ref ascending."""
    return sa.select(Pack).order_by(Pack.ref, Pack.id)


async def create(session: AsyncSession, values: dict[str, Any]) -> Pack:
    pack = Pack(**values)
    session.add(pack)
    await session.flush()
    return pack


async def update(session: AsyncSession, pack: Pack, values: dict[str, Any]) -> bool:
    """Apply the values that differ; return whether anything changed (so ``updated`` moves)."""
    changed = False
    for key, value in values.items():
        if key not in UPDATABLE:
            raise ValueError(f"pack column '{key}' is not updatable")
        if getattr(pack, key) != value:
            setattr(pack, key, value)
            changed = True
    if changed:
        await session.flush()
    return changed


async def delete(session: AsyncSession, pack_id: int) -> None:
    """Delete the row; foreign keys cascade to the pack's components (docs/development.md)."""
    await session.execute(sa.delete(Pack).where(Pack.id == pack_id))


async def component_counts(session: AsyncSession, pack_id: int) -> dict[str, int]:
    """How many actions, sensors, triggers, rules, workflows and policies the pack owns."""
    counts: dict[str, int] = {}
    for name, model in (
        ("actions", Action),
        ("sensors", Sensor),
        ("triggers", Trigger),
        ("rules", Rule),
        ("workflows", WorkflowDefinition),
        ("policies", Policy),
    ):
        table = model.__table__
        query = sa.select(sa.func.count()).select_from(table).where(table.c.pack == pack_id)
        counts[name] = int((await session.execute(query)).scalar_one())
    return counts


async def installed_refs(session: AsyncSession, refs: list[str]) -> set[str]:
    """The subset of ``refs`` that name installed packs."""
    if not refs:
        return set()
    result = await session.execute(sa.select(Pack.ref).where(Pack.ref.in_(refs)))
    return set(result.scalars())


async def installed_versions(session: AsyncSession) -> dict[str, str]:
    """``{ref: version}`` of every pack."""
    result = await session.execute(sa.select(Pack.ref, Pack.version))
    return {ref: version for ref, version in result.all()}


async def dependents(session: AsyncSession, ref: str) -> list[tuple[str, str]]:
    """(pack ref, dependency entry) for every other pack whose ``dependencies`` name ``ref``."""
    found: list[tuple[str, str]] = []
    result = await session.execute(sa.select(Pack.ref, Pack.dependencies).where(Pack.ref != ref))
    for pack_ref, entries in result.all():
        for entry in entries or []:
            if entry.split("@", 1)[0].strip() == ref:
                found.append((pack_ref, entry))
    return found


async def directory_of(session: AsyncSession, settings: Settings, pack_ref: str) -> Path:
    """Where the pack ``pack_ref`` lives on this machine (:meth:`Settings.pack_directory`)."""
    return settings.pack_directory(pack_ref, await storage_path(session, pack_ref))
