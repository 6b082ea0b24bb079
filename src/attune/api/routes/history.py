"""History routes (docs/api.md): the field-level change audit of executions and workers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from attune.api.authz import PrincipalDep, check_execution, refusal, require
from attune.api.deps import AUTH, PlatformDep
from attune.api.pagination import PageRequest, fetch_page, make_page, page_h
from attune.api.schemas.common import Page
from attune.api.schemas.history import HistoryRecord
from attune.db.repos import executions, history
from attune.errors import BadRequest, Forbidden
from attune.platform import Platform

router = APIRouter(prefix="/api/v1", tags=["history"], dependencies=AUTH)


@dataclass(frozen=True)
class HistoryFilters:
    """The filters every history list takes."""

    entity_id: int | None
    entity_ref: str | None
    operation: str | None
    changed_field: str | None
    since: datetime | None
    until: datetime | None


async def history_filters(
    entity_id: Annotated[int | None, Query(description="Id of the execution or worker")] = None,
    entity_ref: Annotated[str | None, Query(description="Exact action ref or worker name")] = None,
    operation: Annotated[str | None, Query(description="INSERT, UPDATE or DELETE (case-insensitive)")] = None,
    changed_field: Annotated[str | None, Query(description="Only changes of this field")] = None,
    since: Annotated[datetime | None, Query(description="Changes at or after this time")] = None,
    until: Annotated[datetime | None, Query(description="Changes at or before this time")] = None,
) -> HistoryFilters:
    return HistoryFilters(entity_id, entity_ref, operation, changed_field, since, until)


Filters = Annotated[HistoryFilters, Depends(history_filters)]
Paging = Annotated[PageRequest, Depends(page_h)]


async def _list(
    platform: Platform,
    entity_type: str,
    filters: HistoryFilters,
    paging: PageRequest,
    *,
    entity_id: int | None,
) -> Page[HistoryRecord]:
    model = history.HISTORY_MODELS[entity_type]
    async with platform.db.session() as session:
        query = history.list_query(
            session,
            model,
            entity_id=entity_id,
            entity_ref=filters.entity_ref,
            operation=filters.operation,
            changed_field=filters.changed_field,
            since=filters.since,
            until=filters.until,
        )
        rows, total = await fetch_page(session, query, paging)
    return make_page([HistoryRecord.model_validate(row) for row in rows], total, paging)


@router.get("/history/{entity_type}", dependencies=[require("history", "read")])
async def list_history(
    entity_type: str, platform: PlatformDep, principal: PrincipalDep, filters: Filters, paging: Paging
) -> Page[HistoryRecord]:
    """Changes of every execution or every worker (the type is case-insensitive), newest first."""
    kind = entity_type.lower()
    if kind not in history.HISTORY_MODELS:
        expected = ", ".join(history.HISTORY_MODELS)
        raise BadRequest(f"unknown history entity type '{entity_type}'; expected one of: {expected}")
    resource = "executions" if kind == "execution" else "workers"
    if not principal.may_unconstrained(resource, "read"):
        raise Forbidden(refusal("read", resource, f"the history of every {kind}"))
    return await _list(platform, kind, filters, paging, entity_id=filters.entity_id)


@router.get("/executions/{id}/history", dependencies=[require("history", "read")])
async def execution_history(
    id: int, platform: PlatformDep, principal: PrincipalDep, filters: Filters, paging: Paging
) -> Page[HistoryRecord]:
    """Changes of one execution, newest first (an unknown id gives an empty page)."""
    if not principal.may_unconstrained("executions", "read"):
        async with platform.db.session() as session:
            execution = await executions.get(session, id)
        if execution is None:
            raise Forbidden(refusal("read", "executions", f"the history of execution {id}"))
        check_execution(principal, execution, "read")
    return await _list(platform, "execution", filters, paging, entity_id=id)


@router.get("/workers/{id}/history", dependencies=[require("history", "read")])
async def worker_history(
    id: int, platform: PlatformDep, filters: Filters, paging: Paging
) -> Page[HistoryRecord]:
    """Changes of one worker, newest first (an unknown id gives an empty page)."""
    return await _list(platform, "worker", filters, paging, entity_id=id)
