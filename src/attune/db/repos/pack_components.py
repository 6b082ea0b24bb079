"""The rows a pack registration writes (docs/packs.md, "Registering a pack"): upsert by ref,
remove what the pack no longer ships, and re-link rules by ref.

Generic over the component models (actions, triggers, sensors, rules, policies, runtimes); the
registration use case in :mod:`attune.packs.register` decides what to write.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, Literal, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from attune.db import models
from attune.errors import ValidationFailed

M = TypeVar("M", bound=models.Base)

Outcome = Literal["created", "updated"] | None


async def by_ref(session: AsyncSession, model: type[M], ref: str) -> M | None:
    """The row of ``model`` whose ``ref`` is ``ref``."""
    column = model.__table__.c.ref  # type: ignore[attr-defined]
    result = await session.execute(sa.select(model).where(column == ref))
    return result.scalar_one_or_none()


def assign(row: Any, values: Mapping[str, Any]) -> bool:
    """Set attributes that differ; return whether anything changed."""
    changed = False
    for key, value in values.items():
        if getattr(row, key) != value:
            setattr(row, key, value)
            changed = True
    return changed


async def create_pack(session: AsyncSession, ref: str, values: Mapping[str, Any]) -> models.Pack:
    pack = models.Pack(ref=ref, **values)
    session.add(pack)
    await session.flush()
    return pack


async def update_row(session: AsyncSession, row: Any, values: Mapping[str, Any]) -> bool:
    """Apply the values that differ and flush; whether anything changed."""
    changed = assign(row, values)
    await session.flush()
    return changed


async def upsert(
    session: AsyncSession, model: type[M], kind: str, ref: str, pack: models.Pack, values: Mapping[str, Any]
) -> tuple[M, Outcome]:
    """Create or update the component ``ref`` of ``pack``; the row and what happened to it.

    A component of that ref owned by another pack is refused (``kind`` names it in the error).
    """
    row = await by_ref(session, model, ref)
    outcome: Outcome = None
    if row is None:
        row = model(ref=ref, pack=pack.id, pack_ref=pack.ref, **values)
        session.add(row)
        outcome = "created"
    else:
        owner = getattr(row, "pack", None)
        if owner is not None and owner != pack.id:
            raise ValidationFailed(
                f"{kind} '{ref}' already belongs to pack '{getattr(row, 'pack_ref', owner)}'; "
                f"pack '{pack.ref}' cannot register it"
            )
        if assign(row, {"pack": pack.id, "pack_ref": pack.ref, **values}):
            outcome = "updated"
    await session.flush()
    return row, outcome


async def sync_runtime_versions(
    session: AsyncSession, runtime_id: int, versions: Mapping[str, Mapping[str, Any]]
) -> None:
    """Make the runtime's versions exactly ``versions`` ({version: column values})."""
    query = sa.select(models.RuntimeVersion).where(models.RuntimeVersion.runtime == runtime_id)
    existing = {v.version: v for v in (await session.execute(query)).scalars()}
    for version, values in versions.items():
        current = existing.pop(version, None)
        if current is None:
            session.add(models.RuntimeVersion(runtime=runtime_id, version=version, **values))
        else:
            assign(current, values)
    for stale in existing.values():
        await session.delete(stale)
    await session.flush()


async def remove_missing(session: AsyncSession, model: type[M], pack_id: int, keep: Collection[str]) -> int:
    """Delete the pack's non-ad-hoc components of ``model`` whose ref is not in ``keep``; how many."""
    table = model.__table__  # type: ignore[attr-defined]
    query = sa.select(model).where(table.c.pack == pack_id)
    if "is_adhoc" in table.c:
        query = query.where(table.c.is_adhoc.is_(False))
    if "workflow_def" in table.c:
        # Workflow companion actions belong to their workflow definition, not to the pack files.
        query = query.where(table.c.workflow_def.is_(None))
    removed = 0
    for row in (await session.execute(query)).scalars():
        if getattr(row, "ref") not in keep:  # noqa: B009 - M (any component model) has no typed `ref`
            await session.delete(row)
            removed += 1
    await session.flush()
    return removed


async def relink_rules(session: AsyncSession) -> None:
    """Give rules whose action/trigger is NULL the id of the entity that now holds that ref."""
    rule, action, trigger = models.Rule, models.Action, models.Trigger
    await session.execute(
        sa.update(rule)
        .where(rule.action.is_(None))
        .values(action=sa.select(action.id).where(action.ref == rule.action_ref).scalar_subquery())
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        sa.update(rule)
        .where(rule.trigger.is_(None))
        .values(trigger=sa.select(trigger.id).where(trigger.ref == rule.trigger_ref).scalar_subquery())
        .execution_options(synchronize_session=False)
    )


async def action_runtimes(session: AsyncSession, pack_id: int) -> Sequence[models.Runtime]:
    """The runtimes the pack's actions run on (each once)."""
    query = (
        sa.select(models.Runtime)
        .join(models.Action, models.Action.runtime == models.Runtime.id)
        .where(models.Action.pack == pack_id)
        .distinct()
    )
    return (await session.execute(query)).scalars().all()
