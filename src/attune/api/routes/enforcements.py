"""``/api/v1/enforcements`` (docs/api.md): rules activated by events, read-only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from attune.api.authz import require
from attune.api.deps import AUTH, PlatformDep
from attune.api.pagination import PageRequest, fetch_page, make_page, page_b
from attune.api.schemas.common import Data, Page
from attune.api.schemas.enforcements import EnforcementResponse, EnforcementSummary
from attune.db.repos import enforcements
from attune.domain.enums import EnforcementStatus
from attune.errors import NotFound

router = APIRouter(prefix="/api/v1", tags=["enforcements"], dependencies=AUTH)


@router.get("/enforcements", dependencies=[require("enforcements", "read")])
async def list_enforcements(
    platform: PlatformDep,
    paging: Annotated[PageRequest, Depends(page_b)],
    rule: Annotated[int | None, Query(description="Rule id (ignored when status is given)")] = None,
    event: Annotated[int | None, Query(description="Event id (ignored when status or rule is given)")] = None,
    status: Annotated[EnforcementStatus | None, Query(description="Wins over rule and event")] = None,
    trigger_ref: Annotated[str | None, Query(description="Exact trigger ref; always applied")] = None,
) -> Page[EnforcementSummary]:
    """Enforcements, newest first."""
    query = enforcements.list_query(
        status=status.value if status else None, rule=rule, event=event, trigger_ref=trigger_ref
    )
    async with platform.db.session() as session:
        rows, total = await fetch_page(session, query, paging)
    return make_page([EnforcementSummary.model_validate(row) for row in rows], total, paging)


@router.get("/enforcements/{id}", dependencies=[require("enforcements", "read")])
async def get_enforcement(id: int, platform: PlatformDep) -> Data[EnforcementResponse]:
    """One enforcement."""
    async with platform.db.session() as session:
        enforcement = await enforcements.get(session, id)
    if enforcement is None:
        raise NotFound(f"Enforcement with ID {id} not found")
    return Data(data=EnforcementResponse.model_validate(enforcement))
