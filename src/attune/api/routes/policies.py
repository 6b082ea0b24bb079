"""``/api/v1/policies`` — read-only; an Attune extension (docs/policies.md).

Policies come from the ``policies/*.yaml`` files of packs; re-registering the pack changes them.

* ``GET /policies`` (pagination family A, ref ascending; ``pack_ref``/``action_ref`` filters)
  → Page of PolicyResponse;
* ``GET /policies/{ref}`` → PolicyResponse; 404 ``Policy 'x' not found``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from attune.api.authz import require
from attune.api.deps import AUTH, PlatformDep
from attune.api.pagination import PageRequest, fetch_page, make_page, page_a
from attune.api.schemas.common import Data, Page
from attune.api.schemas.policies import PolicyResponse
from attune.db.repos import policies
from attune.errors import NotFound

router = APIRouter(prefix="/api/v1", tags=["policies"], dependencies=AUTH)


@router.get("/policies", dependencies=[require("policies", "read")])
async def list_policies(
    platform: PlatformDep,
    page: Annotated[PageRequest, Depends(page_a)],
    pack_ref: Annotated[str | None, Query(description="Only this pack's policies")] = None,
    action_ref: Annotated[str | None, Query(description="Only the policies bound to this action")] = None,
) -> Page[PolicyResponse]:
    """Every policy, ref ascending."""
    async with platform.db.session() as session:
        rows, total = await fetch_page(session, policies.list_query(pack_ref, action_ref), page)
        items = [PolicyResponse.model_validate(row) for row in rows]
    return make_page(items, total, page)


@router.get("/policies/{ref}", dependencies=[require("policies", "read")])
async def get_policy(ref: str, platform: PlatformDep) -> Data[PolicyResponse]:
    """One policy by ref."""
    async with platform.db.session() as session:
        row = await policies.by_ref(session, ref)
        if row is None:
            raise NotFound(f"Policy '{ref}' not found")
        return Data(data=PolicyResponse.model_validate(row))
