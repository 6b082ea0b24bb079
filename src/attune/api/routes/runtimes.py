"""``/api/v1/runtimes`` — an Attune extension, in the style of docs/api.md.

Runtimes are execution environments (shell, Python, Node.js, native) that actions and sensors
run on; packs usually ship them in ``runtimes/*.yaml``. Routes:

* ``GET /runtimes`` (pagination family A, ref ascending) → Page of RuntimeSummary;
* ``GET /packs/{pack_ref}/runtimes`` (family A) → the pack's runtimes; 404 for an unknown pack;
* ``GET /runtimes/{ref}`` → RuntimeResponse, with versions newest first;
* ``POST /runtimes`` → 201 D+m ``Runtime created successfully``; ``pack_ref`` must name a pack;
* ``PUT /runtimes/{ref}`` → D+m ``Runtime updated successfully`` (absent/null = unchanged);
* ``DELETE /runtimes/{ref}`` → S; 409 ``Runtime 'x' is used by N action(s)`` while actions use it.
  Its versions and the sensors running on it are deleted with it.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from sqlalchemy.ext.asyncio import AsyncSession

from attune.api.authz import require
from attune.api.deps import AUTH, PlatformDep
from attune.api.pagination import PageRequest, fetch_page, make_page, page_a
from attune.api.schemas.common import Data, Page, Success
from attune.api.schemas.runtimes import (
    CreateRuntime,
    RuntimeResponse,
    RuntimeSummary,
    RuntimeVersionResponse,
    UpdateRuntime,
)
from attune.db.models import Runtime as RuntimeRow
from attune.db.repos import packs, runtimes
from attune.errors import Conflict, NotFound, Unprocessable

router = APIRouter(prefix="/api/v1", tags=["runtimes"], dependencies=AUTH)


async def _response(session: AsyncSession, row: RuntimeRow) -> RuntimeResponse:
    versions = [RuntimeVersionResponse.model_validate(v) for v in await runtimes.versions(session, row.id)]
    summary = RuntimeSummary.model_validate(row)
    return RuntimeResponse(**summary.model_dump(), execution_config=row.execution_config, versions=versions)


async def _get(session: AsyncSession, ref: str) -> RuntimeRow:
    row = await runtimes.by_ref(session, ref)
    if row is None:
        raise NotFound(f"Runtime '{ref}' not found")
    return row


@router.get("/runtimes", dependencies=[require("runtimes", "read")])
async def list_runtimes(platform: PlatformDep, page: PageRequest = Depends(page_a)) -> Page[RuntimeSummary]:
    """Every runtime, ref ascending."""
    async with platform.db.session() as session:
        rows, total = await fetch_page(session, runtimes.list_query(), page)
        items = [RuntimeSummary.model_validate(row) for row in rows]
    return make_page(items, total, page)


@router.get("/packs/{pack_ref}/runtimes", dependencies=[require("runtimes", "read")])
async def list_pack_runtimes(
    pack_ref: str, platform: PlatformDep, page: PageRequest = Depends(page_a)
) -> Page[RuntimeSummary]:
    """The runtimes a pack owns, ref ascending."""
    async with platform.db.session() as session:
        pack = await packs.by_ref(session, pack_ref)
        if pack is None:
            raise NotFound(f"Pack '{pack_ref}' not found")
        rows, total = await fetch_page(session, runtimes.list_query(pack.id), page)
        items = [RuntimeSummary.model_validate(row) for row in rows]
    return make_page(items, total, page)


@router.post("/runtimes", status_code=201, dependencies=[require("runtimes", "create")])
async def create_runtime(body: CreateRuntime, platform: PlatformDep) -> Data[RuntimeResponse]:
    """Create a runtime owned by an existing pack."""
    if body.ref != body.ref.lower():
        raise Unprocessable("Validation constraint failed: runtime_ref_lowercase")
    if body.ref.count(".") != 1 or body.ref.startswith(".") or body.ref.endswith("."):
        raise Unprocessable("Validation constraint failed: runtime_ref_format")
    async with platform.db.transaction() as session:
        pack = await packs.by_ref(session, body.pack_ref)
        if pack is None:
            raise NotFound(f"Pack '{body.pack_ref}' not found")
        if await runtimes.by_ref(session, body.ref) is not None:
            raise Conflict(f"Runtime with ref '{body.ref}' already exists")
        row = await runtimes.create(
            session,
            {
                "ref": body.ref,
                "pack": pack.id,
                "pack_ref": pack.ref,
                "name": body.name,
                "description": body.description,
                "distributions": body.distributions,
                "installation": body.installation,
                "execution_config": body.execution_config,
            },
        )
        response = await _response(session, row)
    return Data(data=response, message="Runtime created successfully")


@router.get("/runtimes/{ref}", dependencies=[require("runtimes", "read")])
async def get_runtime(ref: str, platform: PlatformDep) -> Data[RuntimeResponse]:
    async with platform.db.session() as session:
        return Data(data=await _response(session, await _get(session, ref)))


@router.put("/runtimes/{ref}", dependencies=[require("runtimes", "update")])
async def update_runtime(ref: str, body: UpdateRuntime, platform: PlatformDep) -> Data[RuntimeResponse]:
    """Change a runtime; absent or null fields stay as they are."""
    values = {key: getattr(body, key) for key in body.model_fields_set if getattr(body, key) is not None}
    async with platform.db.transaction() as session:
        row = await _get(session, ref)
        await runtimes.update(session, row, values)
        response = await _response(session, row)
    return Data(data=response, message="Runtime updated successfully")


@router.delete("/runtimes/{ref}", dependencies=[require("runtimes", "delete")])
async def delete_runtime(ref: str, platform: PlatformDep) -> Success:
    """Delete a runtime that no action uses (its versions and sensors go with it)."""
    async with platform.db.transaction() as session:
        row = await _get(session, ref)
        used = await runtimes.action_count(session, row.id)
        if used:
            raise Conflict(f"Runtime '{ref}' is used by {used} action(s)")
        await runtimes.delete(session, row.id)
    return Success(message=f"Runtime '{ref}' deleted successfully")
