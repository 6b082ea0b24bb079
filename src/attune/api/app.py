"""``create_app(runtime)``: the FastAPI application factory."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.routing import APIRoute
from starlette.routing import compile_path

from attune import __version__
from attune.api.docs import install_docs
from attune.api.errors import install_error_handlers
from attune.api.limits import IdRangeGuard
from attune.api.middleware import ApiGuard
from attune.api.openapi import install_openapi
from attune.api.routes import ROUTERS
from attune.api.ui import install_ui
from attune.auth.principals import PrincipalCache
from attune.auth.service import presented_service_credential
from attune.auth.sessions import LoginThrottle, TokenVersions, claims_problem
from attune.auth.tokens import Claims
from attune.platform import Platform

DEFAULT_CORS_ORIGINS = [
    f"http://{host}:{port}" for host in ("localhost", "127.0.0.1") for port in (3000, 3001, 5173, 8080)
]

#: Route templates reachable without a bearer token (docs/security.md). The internal sensor-token
#: route is not open: it checks the service credential instead of a bearer token.
PUBLIC_PATHS = frozenset(
    {
        "/health",
        "/health/detailed",
        "/health/ready",
        "/health/live",
        "/docs",
        "/docs/oauth2-redirect",
        "/api-spec/openapi.json",
        "/auth/login",
        "/auth/register",
        "/auth/refresh",
        "/auth/internal/sensor-token",
        "/api/v1/webhooks/{webhook_key}",
        "/api/v1/executions/stream",
    }
)

#: Routes that need the service credential (docs/security.md, "Service credentials").
SERVICE_CREDENTIAL_PATHS = frozenset({"/auth/sensor-token", "/auth/internal/sensor-token"})

#: Routes that read raw bytes (no JSON content-type rule) and may be larger than 2 MiB.
RAW_BODY_PATHS = frozenset({"/api/v1/webhooks/{webhook_key}", "/api/v1/packs/upload"})


def is_public_path(path: str) -> bool:
    """Whether the route template ``path`` answers without a bearer token."""
    return path in PUBLIC_PATHS or not path.startswith(("/api/", "/auth/"))


def route_table(routers: list[APIRouter]) -> list[tuple[re.Pattern[str], str]]:
    """(regex, template) for every API route, static templates first (they win over parameters)."""
    templates = {route.path for router in routers for route in router.routes if isinstance(route, APIRoute)}
    ordered = sorted(templates, key=lambda t: ("{" in t, t))
    return [(compile_path(t)[0], t) for t in ordered]


def token_check(platform: Platform, versions: TokenVersions) -> Callable[[Claims], Awaitable[str | None]]:
    """Refuse tokens revoked since issue: a password change, a deleted identity, a finished execution."""

    async def check(claims: Claims) -> str | None:
        return await claims_problem(platform.db, claims, versions.get)

    return check


def create_app(platform: Platform) -> FastAPI:
    """Build the HTTP application around an already-open :class:`~attune.platform.Platform`."""
    app = FastAPI(
        title="Attune API",
        version=__version__,
        description="Attune HTTP API v1",
        openapi_url="/api-spec/openapi.json",
        docs_url=None,  # served from packaged assets by install_docs
        redoc_url=None,
        redirect_slashes=False,
    )
    app.state.platform = platform
    install_error_handlers(app)
    install_openapi(app, is_public_path)
    install_docs(app, "/api-spec/openapi.json")
    for router in ROUTERS:
        app.include_router(router)
    install_ui(app.router)
    settings = platform.settings
    # Per process (docs/security.md): token versions looked up by the guard, failed logins.
    app.state.token_versions = versions = TokenVersions(platform.db)
    app.state.principals = PrincipalCache()
    app.state.login_throttle = LoginThrottle(
        per_login=settings.security.login_max_failures,
        per_address=settings.security.login_max_failures_per_address,
        window=settings.security.login_failure_window,
    )
    # Added before ApiGuard, so it runs inside it: an anonymous caller still gets 401 first.
    app.add_middleware(IdRangeGuard, routes=[route for router in ROUTERS for route in router.routes])
    app.add_middleware(
        ApiGuard,
        routes=route_table(ROUTERS),
        tokens=platform.tokens,
        is_public=is_public_path,
        raw_body_paths=lambda path: path in RAW_BODY_PATHS,
        max_body=settings.server.max_body_size,
        max_upload=settings.pack_install.max_archive_bytes,
        validate_claims=token_check(platform, versions),
        service_paths=SERVICE_CREDENTIAL_PATHS,
        service_credential=lambda headers: presented_service_credential(platform.settings, headers),
    )
    if settings.server.enable_cors:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.server.cors_origins or DEFAULT_CORS_ORIGINS,
            allow_credentials=True,
            allow_methods=["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "Accept"],
            expose_headers=["Authorization", "Content-Type", "Content-Length", "Accept", "Retry-After"],
        )
    return app
