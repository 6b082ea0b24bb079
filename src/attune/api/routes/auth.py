"""``/auth/*`` (docs/security.md): login, register, refresh, current user, passwords, sensor tokens."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from attune.api.deps import ClaimsDep, PlatformDep
from attune.api.routes.webhooks import client_address
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
from attune.auth.service import SERVICE_TOKEN_HEADER, mint_sensor_token, presented_service_credential
from attune.auth.sessions import MAX_ID, LoginThrottle, TokenVersions
from attune.auth.tokens import TokenError
from attune.db.models import Identity
from attune.db.repos import identities
from attune.errors import Forbidden, NotFound, TooManyRequests, Unauthorized
from attune.platform import Platform

router = APIRouter(prefix="/auth", tags=["auth"])

DEFAULT_SENSOR_TTL = 86400
REGISTERED = "Registration received: if the login was free, the account now exists and you can log in with it"
SERVICE_CREDENTIAL_REQUIRED = f"Service credential required ({SERVICE_TOKEN_HEADER.title()} header)"

_UNAUTHORIZED: dict[int | str, dict[str, Any]] = {401: {"description": "Not authenticated"}}
_THROTTLED: dict[int | str, dict[str, Any]] = {
    429: {"description": "Too many failed attempts; see the Retry-After header"}
}


def _throttled(retry_after: int) -> JSONResponse:
    """429 ``TOO_MANY_REQUESTS`` with ``Retry-After`` (seconds)."""
    return JSONResponse(
        {"error": f"Too many failed login attempts; retry in {retry_after} s", "code": TooManyRequests.code},
        status_code=TooManyRequests.status,
        headers={"Retry-After": str(retry_after)},
    )


def _throttle(request: Request) -> LoginThrottle:
    throttle: LoginThrottle = request.app.state.login_throttle
    return throttle


def _address(request: Request, platform: Platform) -> str | None:
    address = client_address(request, platform.settings.server.trusted_proxies)
    return None if address is None else str(address)


def _tokens(platform: Platform, identity: Identity, *, with_user: bool) -> TokenResponse:
    version = identity.token_version or 0
    return TokenResponse(
        access_token=platform.tokens.access(identity.id, identity.login, version),
        refresh_token=platform.tokens.refresh(identity.id, identity.login, version),
        expires_in=platform.tokens.access_ttl,
        user=UserInfo.model_validate(identity) if with_user else None,
    )


@router.post("/login", response_model=Data[TokenResponse], responses={**_UNAUTHORIZED, **_THROTTLED})
async def login(
    body: LoginRequest, request: Request, platform: PlatformDep
) -> Data[TokenResponse] | JSONResponse:
    """Exchange a login and password for tokens.

    Failed attempts are counted per login and per client address: beyond
    ``security.login_max_failures`` (per address ``login_max_failures_per_address``) within
    ``login_failure_window`` seconds the answer is 429 with ``Retry-After``. An unknown login costs
    the same password verification as a wrong password.
    """
    throttle = _throttle(request)
    address = _address(request, platform)
    wait = throttle.retry_after(body.login, address)
    if wait is not None:
        return _throttled(wait)
    async with platform.db.session() as session:
        identity = await identities.by_login(session, body.login)
    stored = identity.password_hash if identity else None
    ok = await asyncio.to_thread(verify_password, platform.hasher, stored, body.password)
    if identity is None or not ok:
        throttle.failed(body.login, address)
        raise Unauthorized("Invalid login or password")
    throttle.succeeded(body.login)
    return Data(data=_tokens(platform, identity, with_user=True))


@router.post(
    "/register",
    status_code=202,
    response_model=Data[SuccessBody],
    responses={403: {"description": "Self-registration is disabled (security.allow_self_registration)"}},
)
async def register(body: RegisterRequest, platform: PlatformDep) -> Data[SuccessBody]:
    """Create an account, when ``security.allow_self_registration`` is on (off by default: 403).

    The answer is the same whether the login was free or taken, so registration does not tell
    which logins exist; log in afterwards to get tokens.
    """
    if not platform.settings.security.allow_self_registration:
        raise Forbidden(
            "Self-registration is disabled: an administrator creates accounts "
            "(`attune user create`, POST /api/v1/identities)"
        )
    # Hashed before looking the login up, so both outcomes cost the same.
    password_hash = await asyncio.to_thread(hash_password, platform.hasher, body.password)
    async with platform.db.transaction() as session:
        if await identities.by_login(session, body.login) is None:
            await identities.create(
                session, body.login, password_hash=password_hash, display_name=body.display_name
            )
    return Data(data=SuccessBody(message=REGISTERED))


@router.post("/refresh", response_model=Data[TokenResponse], responses=_UNAUTHORIZED)
async def refresh(body: RefreshRequest, request: Request, platform: PlatformDep) -> Data[TokenResponse]:
    """A new token pair for a refresh token issued since the identity's last password change."""
    try:
        claims = platform.tokens.decode(body.refresh_token)
    except TokenError as exc:
        raise Unauthorized("Invalid or expired refresh token") from exc
    if claims.token_type != "refresh":
        raise Unauthorized("Invalid token type")
    try:
        identity_id = claims.identity_id
    except ValueError as exc:
        raise Unauthorized("Invalid or expired refresh token") from exc
    if not 0 < identity_id < MAX_ID:
        raise Unauthorized("Invalid or expired refresh token")
    versions: TokenVersions = request.app.state.token_versions
    versions.forget(identity_id)
    async with platform.db.session() as session:
        identity = await identities.get(session, identity_id)
    if identity is None:
        raise Unauthorized("Identity not found")
    if (identity.token_version or 0) != claims.token_version:
        raise Unauthorized("Invalid or expired refresh token")
    return Data(data=_tokens(platform, identity, with_user=False))


@router.get("/me")
async def me(claims: ClaimsDep, platform: PlatformDep) -> Data[UserInfo]:
    async with platform.db.session() as session:
        identity = await identities.get(session, claims.identity_id)
    if identity is None:
        raise NotFound("Identity not found")
    return Data(data=UserInfo.model_validate(identity))


@router.post("/change-password", response_model=Data[SuccessBody], responses={**_UNAUTHORIZED, **_THROTTLED})
async def change_password(
    body: ChangePasswordRequest, claims: ClaimsDep, request: Request, platform: PlatformDep
) -> Data[SuccessBody] | JSONResponse:
    """Change the caller's password. Every token issued before, this one included, stops working."""
    async with platform.db.session() as session:
        identity = await identities.get(session, claims.identity_id)
    if identity is None:
        raise NotFound("Identity not found")
    if not identity.password_hash:
        raise Unauthorized("No password set")
    # Guessing the current password with a stolen token is throttled like logging in.
    throttle = _throttle(request)
    address = _address(request, platform)
    wait = throttle.retry_after(identity.login, address)
    if wait is not None:
        return _throttled(wait)
    if not await asyncio.to_thread(
        verify_password, platform.hasher, identity.password_hash, body.current_password
    ):
        throttle.failed(identity.login, address)
        raise Unauthorized("Invalid current password")
    new_hash = await asyncio.to_thread(hash_password, platform.hasher, body.new_password)
    async with platform.db.transaction() as session:
        row = await identities.get(session, claims.identity_id)
        if row is None:
            raise NotFound("Identity not found")
        await identities.set_password(session, row, new_hash)
    versions: TokenVersions = request.app.state.token_versions
    versions.forget(claims.identity_id)
    return Data(data=SuccessBody(message="Password changed successfully"))


def _require_service_credential(request: Request, platform: Platform, *, bearer_allowed: bool) -> None:
    # ApiGuard checked it before the body was read; checked again here so the route is safe alone.
    if not presented_service_credential(platform.settings, request.headers, bearer_allowed=bearer_allowed):
        raise Unauthorized(SERVICE_CREDENTIAL_REQUIRED)


async def _sensor_token(body: SensorTokenRequest, platform: Platform) -> SensorTokenResponse:
    ttl = body.ttl_seconds or DEFAULT_SENSOR_TTL
    identity_id, token, expires = await mint_sensor_token(
        platform.db, platform.tokens, body.sensor_ref, body.trigger_types, ttl
    )
    return SensorTokenResponse(
        identity_id=identity_id,
        sensor_ref=body.sensor_ref,
        token=token,
        expires_at=expires.isoformat(),
        trigger_types=body.trigger_types,
    )


@router.post("/sensor-token", response_model=Data[SensorTokenResponse], responses=_UNAUTHORIZED)
async def sensor_token(
    body: SensorTokenRequest, _claims: ClaimsDep, request: Request, platform: PlatformDep
) -> Data[SensorTokenResponse]:
    """A sensor token; needs the service credential (``X-Attune-Service-Token``) besides a bearer token."""
    _require_service_credential(request, platform, bearer_allowed=False)
    return Data(data=await _sensor_token(body, platform))


@router.post("/internal/sensor-token", response_model=Data[SensorTokenResponse], responses=_UNAUTHORIZED)
async def internal_sensor_token(
    body: SensorTokenRequest, request: Request, platform: PlatformDep
) -> Data[SensorTokenResponse]:
    """A sensor token for an internal caller holding ``security.service_token``.

    Present it as ``X-Attune-Service-Token`` (or ``Authorization: Bearer``); without it: 401.
    """
    _require_service_credential(request, platform, bearer_allowed=True)
    return Data(data=await _sensor_token(body, platform))
