"""Every operation of the served OpenAPI refuses a caller without a good token (docs/security.md).

The operations come from ``/api-spec/openapi.json`` itself, so a route added later is swept too;
path parameters are replaced by ``1``. The public ones are listed here on purpose: making a new
route public means changing this list, in review.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx
import jwt
import pytest

from attune.api.app import create_app
from attune.db import models
from attune.db.repos import identities
from attune.platform import Platform

#: Operations reachable without a bearer token. ``/auth/internal/sensor-token`` and the event
#: stream are not open: they take the service credential and a ``?token=`` and are swept below.
PUBLIC = {
    ("POST", "/auth/login"),
    ("POST", "/auth/register"),
    ("POST", "/auth/refresh"),
    ("GET", "/health"),
    ("GET", "/health/detailed"),
    ("GET", "/health/live"),
    ("GET", "/health/ready"),
    ("POST", "/api/v1/webhooks/{webhook_key}"),
}
QUERY_TOKEN = {("GET", "/api/v1/executions/stream")}
SERVICE_CREDENTIAL = {("POST", "/auth/internal/sensor-token")}
METHODS = ("get", "post", "put", "patch", "delete")


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def bad_tokens(platform: Platform, identity: models.Identity) -> dict[str, str | None]:
    """Every kind of token that must not open a protected route, by name."""
    now = int(time.time())
    claims = {"sub": str(identity.id), "login": identity.login, "iat": now, "exp": now + 3600}
    claims["token_type"] = "access"
    return {
        "none": None,
        "garbage": "garbage",
        # Beyond the 60 s leeway.
        "expired": platform.tokens.issue(identity.id, identity.login, "access", -120)[0],
        "other secret": jwt.encode(claims, "another-secret-0123456789abcdef0123456789", algorithm="HS256"),
        "refresh": platform.tokens.refresh(identity.id, identity.login),
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}.",
        # Issued before the identity's password change (token_version 0, identity now at 1).
        "revoked": platform.tokens.access(identity.id, identity.login, 0),
    }


def operations(spec: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (method.upper(), path) for path, item in spec["paths"].items() for method in METHODS if method in item
    ]


def concrete(path: str) -> str:
    parts = path.split("/")
    return "/".join("1" if part.startswith("{") and part.endswith("}") else part for part in parts)


@pytest.fixture
async def revoked_user(platform: Platform, user: models.Identity) -> models.Identity:
    async with platform.db.transaction() as session:
        row = await identities.by_login(session, user.login)
        assert row is not None
        assert row.password_hash is not None
        await identities.set_password(session, row, row.password_hash)
    return user


async def test_every_protected_operation_refuses_bad_tokens(
    platform: Platform, revoked_user: models.Identity
) -> None:
    app = create_app(platform)
    platform.settings.security.service_token = "service-credential-0123456789abcdef0123456789"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://attune.test") as c:
        spec = (await c.get("/api-spec/openapi.json")).json()
        ops = operations(spec)
        unsecured = {(m, p) for m, p in ops if not spec["paths"][p][m.lower()].get("security")}
        # Nothing is public by accident: every operation without a security entry is known.
        assert unsecured == PUBLIC | QUERY_TOKEN | SERVICE_CREDENTIAL
        tokens = bad_tokens(platform, revoked_user)
        failures: list[str] = []
        swept = 0
        for method, path in ops:
            if (method, path) in PUBLIC:
                continue
            url = concrete(path)
            for name, token in tokens.items():
                headers: dict[str, str] = {}
                params: dict[str, str] = {}
                if (method, path) in QUERY_TOKEN:
                    if token is not None:
                        params["token"] = token
                elif token is not None:
                    headers["Authorization"] = f"Bearer {token}"
                body = {} if method in ("POST", "PUT", "PATCH") else None
                response = await c.request(method, url, headers=headers, params=params, json=body)
                swept += 1
                if response.status_code != 401:
                    failures.append(f"{method} {path} with {name} token: {response.status_code}")
        assert failures == []
        # The sweep saw the whole API, not an empty document.
        assert len(ops) > 100 and swept == (len(ops) - len(PUBLIC)) * len(tokens)
