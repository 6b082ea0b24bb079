"""``/auth/*`` (api.md §2): login, register, refresh, current user, passwords, sensor tokens."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from fastapi import APIRouter

from attune.api.deps import ClaimsDep, RuntimeDep
from attune.api.schemas.auth import (
    ChangePasswordRequest,
    LoginRequest,
    RefreshRequest,
    RegisterRequest,
    SensorTokenRequest,
    SensorTokenResponse,
    SuccessBody,
    TokenResponse,
    UserInfo,
)
from attune.api.schemas.common import Data
from attune.auth.passwords import hash_password, verify_password
from attune.auth.tokens import TokenError
from attune.db.models import Identity
from attune.db.repos import identities
from attune.errors import Conflict, NotFound, Unauthorized
from attune.runtime import Runtime

router = APIRouter(prefix="/auth", tags=["auth"])

DEFAULT_SENSOR_TTL = 86400


def _tokens(runtime: Runtime, identity: Identity, *, with_user: bool) -> TokenResponse:
    return TokenResponse(
        access_token=runtime.tokens.access(identity.id, identity.login),
        refresh_token=runtime.tokens.refresh(identity.id, identity.login),
        expires_in=runtime.tokens.access_ttl,
        user=UserInfo.model_validate(identity) if with_user else None,
    )


@router.post("/login")
async def login(body: LoginRequest, runtime: RuntimeDep) -> Data[TokenResponse]:
    async with runtime.db.session() as session:
        identity = await identities.by_login(session, body.login)
    stored = identity.password_hash if identity else None
    ok = await asyncio.to_thread(verify_password, runtime.hasher, stored, body.password)
    if identity is None or not ok:
        raise Unauthorized("Invalid login or password")
    return Data(data=_tokens(runtime, identity, with_user=True))


@router.post("/register")
async def register(body: RegisterRequest, runtime: RuntimeDep) -> Data[TokenResponse]:
    password_hash = await asyncio.to_thread(hash_password, runtime.hasher, body.password)
    async with runtime.db.transaction() as session:
        if await identities.by_login(session, body.login) is not None:
            raise Conflict(f"Identity with login '{body.login}' already exists")
        identity = await identities.create(
            session, body.login, password_hash=password_hash, display_name=body.display_name
        )
    return Data(data=_tokens(runtime, identity, with_user=True))


@router.post("/refresh")
async def refresh(body: RefreshRequest, runtime: RuntimeDep) -> Data[TokenResponse]:
    try:
        claims = runtime.tokens.decode(body.refresh_token)
    except TokenError as exc:
        raise Unauthorized("Invalid or expired refresh token") from exc
    if claims.token_type != "refresh":
        raise Unauthorized("Invalid token type")
    async with runtime.db.session() as session:
        identity = await identities.get(session, claims.identity_id)
    if identity is None:
        raise Unauthorized("Identity not found")
    return Data(data=_tokens(runtime, identity, with_user=False))


@router.get("/me")
async def me(claims: ClaimsDep, runtime: RuntimeDep) -> Data[UserInfo]:
    async with runtime.db.session() as session:
        identity = await identities.get(session, claims.identity_id)
    if identity is None:
        raise NotFound("Identity not found")
    return Data(data=UserInfo.model_validate(identity))


@router.post("/change-password")
async def change_password(
    body: ChangePasswordRequest, claims: ClaimsDep, runtime: RuntimeDep
) -> Data[SuccessBody]:
    async with runtime.db.session() as session:
        identity = await identities.get(session, claims.identity_id)
    if identity is None:
        raise NotFound("Identity not found")
    if not identity.password_hash:
        raise Unauthorized("No password set")
    if not await asyncio.to_thread(
        verify_password, runtime.hasher, identity.password_hash, body.current_password
    ):
        raise Unauthorized("Invalid current password")
    new_hash = await asyncio.to_thread(hash_password, runtime.hasher, body.new_password)
    async with runtime.db.transaction() as session:
        row = await identities.get(session, claims.identity_id)
        if row is None:
            raise NotFound("Identity not found")
        row.password_hash = new_hash
    return Data(data=SuccessBody(message="Password changed successfully"))


async def _sensor_token(body: SensorTokenRequest, runtime: Runtime) -> SensorTokenResponse:
    async with runtime.db.transaction() as session:
        identity = await identities.sensor_identity(session, body.sensor_ref, body.trigger_types)
    ttl = body.ttl_seconds or DEFAULT_SENSOR_TTL
    token, exp = runtime.tokens.issue(
        identity.id,
        body.sensor_ref,
        "sensor",
        ttl,
        scope="sensor",
        metadata={"trigger_types": body.trigger_types},
    )
    return SensorTokenResponse(
        identity_id=identity.id,
        sensor_ref=body.sensor_ref,
        token=token,
        expires_at=datetime.fromtimestamp(exp, UTC).isoformat(),
        trigger_types=body.trigger_types,
    )


@router.post("/sensor-token")
async def sensor_token(
    body: SensorTokenRequest, _claims: ClaimsDep, runtime: RuntimeDep
) -> Data[SensorTokenResponse]:
    return Data(data=await _sensor_token(body, runtime))


@router.post("/internal/sensor-token")
async def internal_sensor_token(body: SensorTokenRequest, runtime: RuntimeDep) -> Data[SensorTokenResponse]:
    return Data(data=await _sensor_token(body, runtime))
