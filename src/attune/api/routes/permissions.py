"""``/api/v1/permissions``: permission sets and their assignments (docs/security.md).

* ``GET /permissions/sets`` (family A, ref ascending), ``POST /permissions/sets`` → 201,
  ``GET/PUT/DELETE /permissions/sets/{ref}``; the built-in ``core.*`` sets cannot be changed
  or deleted (409);
* ``GET /permissions/assignments?identity_id=N`` → the identity's assignments;
* ``POST /permissions/assignments {identity_id, permission_set_ref}`` → 201
  ``{id, identity_id, permission_set_ref, created}``; ``DELETE /permissions/assignments/{id}`` → 204.

Assigning rights is administration: assignments need ``manage`` on permission sets.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from attune.api.authz import grants_changed, require
from attune.api.deps import AUTH, PlatformDep
from attune.api.pagination import PageRequest, fetch_page, make_page, page_a
from attune.api.schemas.common import Data, Page, Success
from attune.api.schemas.permissions import (
    AssignmentRequest,
    AssignmentResponse,
    GrantModel,
    PermissionSetRequest,
    PermissionSetResponse,
    UpdatePermissionSetRequest,
)
from attune.db.models import PermissionSet
from attune.db.repos import identities, permissions
from attune.domain.permissions import BUILTIN_SETS, GrantError, parse_grants
from attune.errors import BadRequest, Conflict, NotFound

router = APIRouter(prefix="/api/v1/permissions", tags=["permissions"], dependencies=AUTH)


def _grants(raw: list[dict[str, object]]) -> list[dict[str, object]]:
    """Validated grants in their canonical JSON form; 400 names the first bad one."""
    try:
        return [grant.as_dict() for grant in parse_grants(raw)]
    except GrantError as exc:
        raise BadRequest(f"Invalid grant: {exc}") from exc


def _response(row: PermissionSet) -> PermissionSetResponse:
    return PermissionSetResponse(
        id=row.id,
        ref=row.ref,
        pack_ref=row.pack_ref,
        label=row.label,
        description=row.description,
        grants=[GrantModel(**grant) for grant in row.grants or [] if isinstance(grant, dict)],
        created=row.created,
        updated=row.updated,
    )


async def _get(session: AsyncSession, ref: str) -> PermissionSet:
    if ref in BUILTIN_SETS:
        await permissions.ensure_builtin_sets(session)
    row = await permissions.get_set(session, ref)
    if row is None:
        raise NotFound(f"Permission set '{ref}' not found")
    return row


def _not_builtin(ref: str) -> None:
    if ref in BUILTIN_SETS:
        raise Conflict(f"Permission set '{ref}' is built in and cannot be changed")


@router.get("/sets", dependencies=[require("permission_sets", "read")])
async def list_sets(
    platform: PlatformDep, page: Annotated[PageRequest, Depends(page_a)]
) -> Page[PermissionSetResponse]:
    """Every permission set (the built-in ones included), ref ascending."""
    async with platform.db.transaction() as session:
        await permissions.ensure_builtin_sets(session)
        rows, total = await fetch_page(session, permissions.sets_query(), page)
        items = [_response(row) for row in rows]
    return make_page(items, total, page)


@router.post("/sets", status_code=201, dependencies=[require("permission_sets", "create")])
async def create_set(body: PermissionSetRequest, platform: PlatformDep) -> Data[PermissionSetResponse]:
    """Create a permission set of grants."""
    _not_builtin(body.ref)
    grants = _grants(body.grants)
    async with platform.db.transaction() as session:
        if await permissions.get_set(session, body.ref) is not None:
            raise Conflict(f"Permission set '{body.ref}' already exists")
        row = await permissions.add_set(
            session,
            PermissionSet(
                ref=body.ref,
                pack_ref=body.ref.split(".", 1)[0],
                label=body.label,
                description=body.description,
                grants=grants,
            ),
        )
        response = _response(row)
    return Data(data=response, message="Permission set created successfully")


@router.get("/sets/{ref}", dependencies=[require("permission_sets", "read")])
async def get_set(ref: str, platform: PlatformDep) -> Data[PermissionSetResponse]:
    """One permission set."""
    async with platform.db.transaction() as session:
        return Data(data=_response(await _get(session, ref)))


@router.put("/sets/{ref}", dependencies=[require("permission_sets", "update")])
async def update_set(
    ref: str, body: UpdatePermissionSetRequest, request: Request, platform: PlatformDep
) -> Data[PermissionSetResponse]:
    """Change a set's label, description or grants (every assigned identity is affected)."""
    _not_builtin(ref)
    grants = _grants(body.grants) if body.grants is not None else None
    async with platform.db.transaction() as session:
        row = await _get(session, ref)
        if body.label is not None:
            row.label = body.label
        if body.description is not None:
            row.description = body.description
        if grants is not None:
            row.grants = grants
        await session.flush()
        response = _response(row)
    grants_changed(request)
    return Data(data=response, message="Permission set updated successfully")


@router.delete("/sets/{ref}", dependencies=[require("permission_sets", "delete")])
async def delete_set(ref: str, request: Request, platform: PlatformDep) -> Success:
    """Delete a set and its assignments."""
    _not_builtin(ref)
    async with platform.db.transaction() as session:
        await permissions.delete_set(session, await _get(session, ref))
    grants_changed(request)
    return Success(message="Permission set deleted successfully")


@router.get("/assignments", dependencies=[require("permission_sets", "read")])
async def list_assignments(identity_id: int, platform: PlatformDep) -> Data[list[AssignmentResponse]]:
    """The assignments of one identity (Attune extension; ``attune permission revoke`` uses it)."""
    async with platform.db.session() as session:
        rows = await permissions.assignments_of(session, identity_id)
    return Data(
        data=[
            AssignmentResponse(
                id=row.id, identity_id=row.identity, permission_set_ref=ref, created=row.created
            )
            for row, ref in rows
        ]
    )


@router.post("/assignments", status_code=201, dependencies=[require("permission_sets", "manage")])
async def create_assignment(
    body: AssignmentRequest, request: Request, platform: PlatformDep
) -> Data[AssignmentResponse]:
    """Give an identity a permission set."""
    async with platform.db.transaction() as session:
        if await identities.get(session, body.identity_id) is None:
            raise NotFound(f"Identity with ID {body.identity_id} not found")
        permset = await _get(session, body.permission_set_ref)
        if await permissions.find_assignment(session, body.identity_id, permset.id) is not None:
            raise Conflict(
                f"Identity {body.identity_id} already has permission set '{body.permission_set_ref}'"
            )
        row = await permissions.assign(session, body.identity_id, permset.id)
        response = AssignmentResponse(
            id=row.id, identity_id=row.identity, permission_set_ref=permset.ref, created=row.created
        )
    grants_changed(request)
    return Data(data=response, message="Permission set assigned successfully")


@router.delete(
    "/assignments/{id}",
    status_code=204,
    response_class=Response,
    dependencies=[require("permission_sets", "manage")],
)
async def delete_assignment(id: int, request: Request, platform: PlatformDep) -> Response:
    """Take a permission set away from an identity."""
    async with platform.db.transaction() as session:
        row = await permissions.get_assignment(session, id)
        if row is None:
            raise NotFound(f"Permission assignment with ID {id} not found")
        await permissions.unassign(session, row)
    grants_changed(request)
    return Response(status_code=204)
