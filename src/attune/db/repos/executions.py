"""Execution rows (domain.md §2.4): the API's queries, stats and the manual-run insert."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from attune.db.models import Action, Enforcement, Execution

#: Rows fetched per round trip while scanning results for ``result_contains``.
SCAN_BATCH = 500


@dataclass(frozen=True)
class ExecutionFilters:
    """The ``GET /executions`` filters (api.md §4.7), all combined with AND."""

    status: str | None = None
    enforcement: int | None = None
    action_ref: str | None = None
    pack_name: str | None = None
    rule_ref: str | None = None
    trigger_ref: str | None = None
    executor: int | None = None
    parent: int | None = None
    top_level_only: bool = False
    #: Every attempt of a retry chain: the first execution and its retries and re-runs.
    original_execution: int | None = None


async def get(session: AsyncSession, execution_id: int) -> Execution | None:
    """The execution with ``execution_id``, or None."""
    return await session.get(Execution, execution_id)


async def action_by_ref(session: AsyncSession, ref: str) -> Action | None:
    """The action with ``ref``, or None."""
    return (await session.execute(sa.select(Action).where(Action.ref == ref))).scalar_one_or_none()


async def param_schema_of(session: AsyncSession, execution: Execution) -> Any:
    """The ``param_schema`` of the execution's action (by id, then by ref); None when it is gone."""
    action = await session.get(Action, execution.action) if execution.action is not None else None
    if action is None:
        action = await action_by_ref(session, execution.action_ref)
    return action.param_schema if action is not None else None


def _newest_first(query: sa.Select[Execution]) -> sa.Select[Execution]:
    return query.order_by(Execution.created.desc(), Execution.id.desc())


def list_query(filters: ExecutionFilters) -> sa.Select[Execution]:
    """Executions matching ``filters``, newest first. ``status`` wins over ``enforcement``."""
    query = sa.select(Execution)
    if filters.status is not None:
        query = query.where(Execution.status == filters.status)
    elif filters.enforcement is not None:
        query = query.where(Execution.enforcement == filters.enforcement)
    if filters.action_ref is not None:
        query = query.where(Execution.action_ref == filters.action_ref)
    if filters.pack_name is not None:
        query = query.where(Execution.action_ref.startswith(f"{filters.pack_name}.", autoescape=True))
    if filters.rule_ref is not None or filters.trigger_ref is not None:
        matching = sa.select(Enforcement.id)
        if filters.rule_ref is not None:
            matching = matching.where(Enforcement.rule_ref == filters.rule_ref)
        if filters.trigger_ref is not None:
            matching = matching.where(Enforcement.trigger_ref == filters.trigger_ref)
        query = query.where(Execution.enforcement.in_(matching))
    if filters.executor is not None:
        query = query.where(Execution.executor == filters.executor)
    if filters.parent is not None:
        query = query.where(Execution.parent == filters.parent)
    if filters.original_execution is not None:
        root = filters.original_execution
        query = query.where(sa.or_(Execution.id == root, Execution.original_execution == root))
    if filters.top_level_only:
        query = query.where(Execution.parent.is_(None))
    return _newest_first(query)


def by_status_query(status: str) -> sa.Select[Execution]:
    """Executions in ``status``, newest first."""
    return _newest_first(sa.select(Execution).where(Execution.status == status))


def by_enforcement_query(enforcement_id: int) -> sa.Select[Execution]:
    """Executions spawned by one enforcement, newest first."""
    return _newest_first(sa.select(Execution).where(Execution.enforcement == enforcement_id))


def serialized_result(result: Any) -> str:
    """The canonical text ``result_contains`` searches: compact JSON with sorted keys.

    Computed from the decoded value, not the stored text, because the two databases store JSON
    differently (JSONB reorders keys and spaces its output; SQLite keeps the text as written), so
    the same search must give the same answer on both.
    """
    return json.dumps(result, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


async def page_with_result_containing(
    session: AsyncSession, query: sa.Select[Execution], needle: str, *, offset: int, limit: int
) -> tuple[Sequence[Execution], int]:
    """One page of ``query`` restricted to rows whose serialised ``result`` contains ``needle``
    (case-insensitive), and the total number of such rows.

    Scans the filtered candidates in order, keeping only matching ids, then loads the one page.
    Executions without a result never match.
    """
    wanted = needle.lower()
    scan = query.with_only_columns(Execution.id, Execution.result).execution_options(yield_per=SCAN_BATCH)
    matched: list[int] = []
    async for execution_id, result in await session.stream(scan):
        if result is not None and wanted in serialized_result(result).lower():
            matched.append(execution_id)
    page_ids = matched[offset : offset + limit] if limit > 0 else []
    if not page_ids:
        return [], len(matched)
    rows = (await session.execute(sa.select(Execution).where(Execution.id.in_(page_ids)))).scalars().all()
    position = {execution_id: index for index, execution_id in enumerate(page_ids)}
    return sorted(rows, key=lambda row: position[row.id]), len(matched)


async def enforcement_refs(session: AsyncSession, ids: set[int]) -> dict[int, tuple[str, str]]:
    """``{enforcement id: (rule_ref, trigger_ref)}`` for the given enforcement ids."""
    if not ids:
        return {}
    query = sa.select(Enforcement.id, Enforcement.rule_ref, Enforcement.trigger_ref).where(
        Enforcement.id.in_(ids)
    )
    return {row.id: (row.rule_ref, row.trigger_ref) for row in await session.execute(query)}


async def count_by_status(session: AsyncSession) -> dict[str, int]:
    """``{status: count}`` over every execution."""
    query = sa.select(Execution.status, sa.func.count()).group_by(Execution.status)
    return {status: int(count) for status, count in await session.execute(query)}


async def add(session: AsyncSession, execution: Execution) -> Execution:
    """Insert ``execution`` and flush so its id and timestamps are set."""
    session.add(execution)
    await session.flush()
    return execution


async def action_of(session: AsyncSession, execution: Execution) -> Action | None:
    """The action row an execution runs (None when it was deleted)."""
    if execution.action is None:
        return None
    return await session.get(Action, execution.action)


async def lineage(session: AsyncSession, execution_id: int, *, limit: int = 1000) -> set[int]:
    """``execution_id`` and the ids of all its ancestors (``parent`` links)."""
    seen: set[int] = set()
    current: int | None = execution_id
    while current is not None and current not in seen and len(seen) < limit:
        seen.add(current)
        current = await session.scalar(sa.select(Execution.parent).where(Execution.id == current))
    return seen


def executor_of(execution_column: Any) -> sa.ScalarSelect[Any]:
    """A correlated subquery: the executor of the execution ``execution_column`` names."""
    return sa.select(Execution.executor).where(Execution.id == execution_column).scalar_subquery()


def action_ref_of(execution_column: Any) -> sa.ScalarSelect[Any]:
    """A correlated subquery: the action ref of the execution ``execution_column`` names."""
    return sa.select(Execution.action_ref).where(Execution.id == execution_column).scalar_subquery()


async def of_event(session: AsyncSession, event_id: int) -> Sequence[Execution]:
    """The executions an event caused directly (through its enforcements), oldest first."""
    query = (
        sa.select(Execution)
        .join(Enforcement, Execution.enforcement == Enforcement.id)
        .where(Enforcement.event == event_id)
        .order_by(Execution.id)
    )
    return (await session.scalars(query)).all()


async def statuses(session: AsyncSession, ids: Sequence[int]) -> dict[int, str]:
    """``{id: status}`` of the given executions (missing ones are left out)."""
    if not ids:
        return {}
    rows = await session.execute(sa.select(Execution.id, Execution.status).where(Execution.id.in_(ids)))
    return {row.id: row.status for row in rows}
