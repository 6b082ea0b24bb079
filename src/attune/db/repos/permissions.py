"""Permission sets, their assignments to identities, and the row filters lists apply.

docs/security.md "Permission sets".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import QueryableAttribute

from attune.db.models import PermissionAssignment, PermissionSet
from attune.domain.permissions import BUILTIN_SETS

T = TypeVar("T")

#: A column or ORM attribute naming a row's pack or owner.
Column = sa.ColumnElement[Any] | QueryableAttribute[Any]


async def get_set(session: AsyncSession, ref: str) -> PermissionSet | None:
    result = await session.execute(sa.select(PermissionSet).where(PermissionSet.ref == ref))
    return result.scalar_one_or_none()


def sets_query() -> sa.Select[PermissionSet]:
    return sa.select(PermissionSet).order_by(PermissionSet.ref.asc())


async def add_set(session: AsyncSession, row: PermissionSet) -> PermissionSet:
    session.add(row)
    await session.flush()
    return row


async def delete_set(session: AsyncSession, row: PermissionSet) -> None:
    await session.delete(row)
    await session.flush()


async def ensure_builtin_sets(session: AsyncSession) -> None:
    """Create or refresh ``core.admin``, ``core.operator`` and ``core.viewer`` (idempotent)."""
    for ref, spec in BUILTIN_SETS.items():
        row = await get_set(session, ref)
        if row is None:
            session.add(
                PermissionSet(
                    ref=ref,
                    pack_ref="core",
                    label=spec["label"],
                    description=spec["description"],
                    grants=spec["grants"],
                )
            )
        elif row.grants != spec["grants"] or row.label != spec["label"]:
            row.grants = spec["grants"]
            row.label = spec["label"]
            row.description = spec["description"]
    await session.flush()


async def sets_of(session: AsyncSession, identity_id: int) -> list[PermissionSet]:
    """The permission sets assigned to an identity, by ref."""
    query = (
        sa.select(PermissionSet)
        .join(PermissionAssignment, PermissionAssignment.permset == PermissionSet.id)
        .where(PermissionAssignment.identity == identity_id)
        .order_by(PermissionSet.ref.asc())
    )
    return list((await session.execute(query)).scalars())


async def get_assignment(session: AsyncSession, assignment_id: int) -> PermissionAssignment | None:
    return await session.get(PermissionAssignment, assignment_id)


async def find_assignment(
    session: AsyncSession, identity_id: int, permset_id: int
) -> PermissionAssignment | None:
    query = sa.select(PermissionAssignment).where(
        PermissionAssignment.identity == identity_id, PermissionAssignment.permset == permset_id
    )
    return (await session.execute(query)).scalar_one_or_none()


async def assign(session: AsyncSession, identity_id: int, permset_id: int) -> PermissionAssignment:
    row = PermissionAssignment(identity=identity_id, permset=permset_id)
    session.add(row)
    await session.flush()
    return row


async def unassign(session: AsyncSession, row: PermissionAssignment) -> None:
    await session.delete(row)
    await session.flush()


async def assignments_of(session: AsyncSession, identity_id: int) -> list[tuple[PermissionAssignment, str]]:
    """``(assignment, set ref)`` pairs of one identity."""
    query = (
        sa.select(PermissionAssignment, PermissionSet.ref)
        .join(PermissionSet, PermissionAssignment.permset == PermissionSet.id)
        .where(PermissionAssignment.identity == identity_id)
        .order_by(PermissionAssignment.id.asc())
    )
    return [(row[0], row[1]) for row in (await session.execute(query)).all()]


async def set_ref_of(session: AsyncSession, permset_id: int) -> str | None:
    ref: str | None = await session.scalar(sa.select(PermissionSet.ref).where(PermissionSet.id == permset_id))
    return ref


# --------------------------------------------------------------------------- row filters


@dataclass(frozen=True)
class RowScope:
    """Which rows a caller may see: everything, or any of some (packs, owned-only) conjunctions."""

    unrestricted: bool = False
    #: Each entry: (packs or None for any pack, owner_self).
    clauses: Sequence[tuple[frozenset[str] | None, bool]] = field(default_factory=tuple)
    identity_id: int | None = None

    @property
    def nothing(self) -> bool:
        return not self.unrestricted and not self.clauses


def restrict(
    query: sa.Select[T],
    scope: RowScope,
    *,
    pack: Column | None = None,
    owner: Column | None = None,
    ref_of_pack: Column | None = None,
) -> sa.Select[T]:
    """``query`` limited to the rows ``scope`` admits.

    ``pack``: the row's pack ref column; ``ref_of_pack``: a ``<pack>.<name>`` ref column instead
    (an execution's ``action_ref``); ``owner``: the column holding the owning identity's id.

    A constraint on a column the row does not have admits nothing, so a pack-limited grant
    never reveals a row that belongs to no pack.
    """
    if scope.unrestricted:
        return query
    alternatives: list[sa.ColumnElement[bool]] = []
    for packs, owner_self in scope.clauses:
        parts: list[sa.ColumnElement[bool]] = []
        if packs is not None:
            if pack is not None:
                parts.append(pack.in_(sorted(packs)))
            elif ref_of_pack is not None:
                parts.append(sa.or_(sa.false(), *(_ref_in_pack(ref_of_pack, p) for p in sorted(packs))))
            else:
                continue
        if owner_self:
            if owner is None or scope.identity_id is None:
                continue
            parts.append(owner == scope.identity_id)
        alternatives.append(sa.and_(*parts) if parts else sa.true())
    if not alternatives:
        return query.where(sa.false())
    return query.where(sa.or_(*alternatives))


def _ref_in_pack(ref_column: Column, pack: str) -> sa.ColumnElement[bool]:
    escaped = pack.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return ref_column.like(f"{escaped}.%", escape="\\")
