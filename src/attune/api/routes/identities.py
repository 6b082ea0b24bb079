"""``/api/v1/identities``: users and their rights (docs/security.md "Permission sets").

* ``GET /identities`` (family A, login ascending) → Page of IdentityResponse;
* ``POST /identities`` ``{login, password, display_name, is_admin?}`` → 201; only an administrator
  may create an administrator;
* ``GET/PUT/DELETE /identities/{id}`` — an identity may read itself and change its own display name
  (its password through ``POST /auth/change-password``); ``is_admin`` changes need an
  administrator; the last administrator cannot be deleted or demoted;
* ``GET /identities/{id}/permissions`` → ``{identity_id, login, is_admin, permission_sets,
  grants}`` — an identity may always read its own.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from attune.api.authz import Principal, PrincipalDep, grants_changed, identity_principal, require
from attune.api.deps import AUTH, PlatformDep
from attune.api.pagination import PageRequest, fetch_page, make_page, page_a
from attune.api.schemas.common import Data, Page, Success
from attune.api.schemas.permissions import (
    CreateIdentityRequest,
    GrantModel,
    IdentityPermissions,
    IdentityResponse,
    UpdateIdentityRequest,
)
from attune.auth.passwords import hash_password
from attune.auth.sessions import TokenVersions
from attune.db.models import Identity
from attune.db.repos import identities, permissions
from attune.errors import Conflict, Forbidden, NotFound

router = APIRouter(prefix="/api/v1", tags=["identities"], dependencies=AUTH)


async def _response(session: AsyncSession, row: Identity) -> IdentityResponse:
    sets = await permissions.sets_of(session, row.id)
    return IdentityResponse(
        id=row.id,
        login=row.login,
        display_name=row.display_name,
        is_admin=bool(row.is_admin),
        permission_sets=[s.ref for s in sets],
        created=row.created,
        updated=row.updated,
    )


async def _get(session: AsyncSession, identity_id: int) -> Identity:
    row = await identities.get(session, identity_id)
    if row is None:
        raise NotFound(f"Identity with ID {identity_id} not found")
    return row


def _check_other(principal: Principal, identity_id: int, action: str) -> None:
    """An identity may read (and partly update) itself; anything else needs a grant."""
    if principal.identity_id == identity_id and principal.token_type == "access":
        return
    principal.check("identities", action, owner=identity_id, what=f"{action} identity {identity_id}")


@router.get("/identities", dependencies=[require("identities", "read", scoped=True)])
async def list_identities(
    platform: PlatformDep, principal: PrincipalDep, page: Annotated[PageRequest, Depends(page_a)]
) -> Page[IdentityResponse]:
    """Identities that log in (sensor identities aside), login ascending."""
    query = permissions.restrict(identities.list_query(), principal.scope("identities"), owner=Identity.id)
    async with platform.db.session() as session:
        rows, total = await fetch_page(session, query, page)
        items = [await _response(session, row) for row in rows]
    return make_page(items, total, page)


@router.post("/identities", status_code=201, dependencies=[require("identities", "create", scoped=True)])
async def create_identity(
    body: CreateIdentityRequest, platform: PlatformDep, principal: PrincipalDep
) -> Data[IdentityResponse]:
    """Create an identity with a password (no permission set: assign one next)."""
    principal.check("identities", "create", what="create identities")
    if body.is_admin and not principal.is_admin:
        raise Forbidden("Only an administrator may create an administrator")
    password_hash = await asyncio.to_thread(hash_password, platform.hasher, body.password)
    async with platform.db.transaction() as session:
        if await identities.by_login(session, body.login) is not None:
            raise Conflict(f"Identity with login '{body.login}' already exists")
        row = await identities.create(
            session,
            body.login,
            password_hash=password_hash,
            display_name=body.display_name,
            attributes={"created_via": "api"},
            is_admin=body.is_admin,
        )
        response = await _response(session, row)
    return Data(data=response, message="Identity created successfully")


@router.get("/identities/{id}", dependencies=[require("identities", "read", deferred=True)])
async def get_identity(id: int, platform: PlatformDep, principal: PrincipalDep) -> Data[IdentityResponse]:
    """One identity (an identity may always read itself)."""
    _check_other(principal, id, "read")
    async with platform.db.session() as session:
        return Data(data=await _response(session, await _get(session, id)))


@router.put("/identities/{id}", dependencies=[require("identities", "update", deferred=True)])
async def update_identity(
    id: int, body: UpdateIdentityRequest, request: Request, platform: PlatformDep, principal: PrincipalDep
) -> Data[IdentityResponse]:
    """Change the display name, the password or (administrators only) ``is_admin``.

    A new password revokes every token issued to the identity before (docs/security.md).
    """
    _check_other(principal, id, "update")
    if body.password is not None and not principal.may_on("identities", "update", owner=id):
        # Without a grant an identity changes its own password where it must show the current one.
        raise Forbidden("Change your own password with POST /auth/change-password")
    if body.is_admin is not None and not principal.is_admin:
        raise Forbidden("Only an administrator may change is_admin")
    password_hash = (
        await asyncio.to_thread(hash_password, platform.hasher, body.password) if body.password else None
    )
    async with platform.db.transaction() as session:
        row = await _get(session, id)
        if body.display_name is not None:
            row.display_name = body.display_name
        if password_hash is not None:
            await identities.set_password(session, row, password_hash)
        if body.is_admin is not None and body.is_admin != row.is_admin:
            if not body.is_admin and await identities.admin_count(session) <= 1:
                raise Conflict("Cannot remove the last administrator")
            row.is_admin = body.is_admin
        await session.flush()
        response = await _response(session, row)
    if body.is_admin is not None:
        grants_changed(request)
    if password_hash is not None:
        versions: TokenVersions = request.app.state.token_versions
        versions.forget(id)
    return Data(data=response, message="Identity updated successfully")


@router.delete("/identities/{id}", dependencies=[require("identities", "delete", scoped=True)])
async def delete_identity(
    id: int, request: Request, platform: PlatformDep, principal: PrincipalDep
) -> Success:
    """Delete an identity (its keys and assignments go with it)."""
    principal.check("identities", "delete", owner=id, what=f"delete identity {id}")
    async with platform.db.transaction() as session:
        row = await _get(session, id)
        if row.is_admin and await identities.admin_count(session) <= 1:
            raise Conflict("Cannot delete the last administrator")
        await identities.delete(session, row)
    grants_changed(request)
    return Success(message="Identity deleted successfully")


@router.get("/identities/{id}/permissions", dependencies=[require("identities", "read", deferred=True)])
async def identity_permissions(
    id: int, platform: PlatformDep, principal: PrincipalDep
) -> Data[IdentityPermissions]:
    """What an identity may do: its sets and the union of their grants."""
    _check_other(principal, id, "read")
    async with platform.db.session() as session:
        target = await identity_principal(session, id)
    if target is None:
        raise NotFound(f"Identity with ID {id} not found")
    assert target.identity_id is not None
    return Data(
        data=IdentityPermissions(
            identity_id=target.identity_id,
            login=target.login,
            is_admin=target.is_admin,
            permission_sets=list(target.permission_sets),
            grants=[GrantModel(**grant) for grant in target.as_grants()],
        )
    )
