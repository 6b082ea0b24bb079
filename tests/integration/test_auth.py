"""/auth/* behaviour (docs/security.md, docs/api.md)."""

from __future__ import annotations

import time

import httpx
import jwt

from attune.db import models
from attune.db.repos import identities
from attune.platform import Platform
from tests.conftest import TEST_JWT_SECRET, TEST_PASSWORD

SERVICE_TOKEN = "service-credential-0123456789abcdef0123456789"


async def test_login_returns_tokens_and_user(client: httpx.AsyncClient, user: models.Identity) -> None:
    response = await client.post("/auth/login", json={"login": "alice", "password": TEST_PASSWORD})
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["token_type"] == "Bearer"
    assert data["expires_in"] == 3600
    assert data["user"] == {"id": user.id, "login": "alice", "display_name": "Alice"}
    claims = jwt.decode(data["access_token"], TEST_JWT_SECRET, algorithms=["HS256"])
    assert claims["sub"] == str(user.id)
    assert claims["token_type"] == "access"
    assert claims["exp"] - claims["iat"] == 3600
    refresh = jwt.decode(data["refresh_token"], TEST_JWT_SECRET, algorithms=["HS256"])
    assert refresh["exp"] - refresh["iat"] == 604800


async def test_login_with_wrong_password_is_401(client: httpx.AsyncClient, user: models.Identity) -> None:
    response = await client.post("/auth/login", json={"login": "alice", "password": "nope"})
    assert response.status_code == 401
    assert response.json() == {"error": "Invalid login or password", "code": "UNAUTHORIZED"}
    unknown = await client.post("/auth/login", json={"login": "bob", "password": "whatever"})
    assert unknown.status_code == 401


async def test_login_validation_names_the_field(client: httpx.AsyncClient) -> None:
    response = await client.post("/auth/login", json={"login": "", "password": "x"})
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "VALIDATION_ERROR"
    assert body["error"].startswith("Invalid login request: login")


async def test_register_is_closed_by_default(client: httpx.AsyncClient, platform: Platform) -> None:
    body = {"login": "carol", "password": "longenough", "display_name": "Carol"}
    closed = await client.post("/auth/register", json=body)
    assert closed.status_code == 403
    assert closed.json()["code"] == "FORBIDDEN"
    assert "attune user create" in closed.json()["error"]
    async with platform.db.session() as session:
        assert await identities.by_login(session, "carol") is None


async def test_open_registration_answers_the_same_for_taken_and_free_logins(
    client: httpx.AsyncClient, platform: Platform, user: models.Identity
) -> None:
    platform.settings.security.allow_self_registration = True
    free = await client.post("/auth/register", json={"login": "carol", "password": "longenough"})
    taken = await client.post("/auth/register", json={"login": "alice", "password": "longenough"})
    assert (free.status_code, free.json()) == (taken.status_code, taken.json())
    assert free.status_code == 202
    assert "access_token" not in free.text
    # The free login was created; the taken one kept its owner's password.
    assert (
        await client.post("/auth/login", json={"login": "carol", "password": "longenough"})
    ).status_code == 200
    stolen = await client.post("/auth/login", json={"login": "alice", "password": "longenough"})
    assert stolen.status_code == 401
    short = await client.post("/auth/register", json={"login": "dave", "password": "short"})
    assert short.status_code == 422
    assert "password" in short.json()["error"]


async def test_refresh_issues_a_new_pair_without_user(
    client: httpx.AsyncClient, user: models.Identity
) -> None:
    login = await client.post("/auth/login", json={"login": "alice", "password": TEST_PASSWORD})
    tokens = login.json()["data"]
    response = await client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert response.status_code == 200
    data = response.json()["data"]
    assert "user" not in data
    assert data["access_token"] and data["refresh_token"]
    wrong_type = await client.post("/auth/refresh", json={"refresh_token": tokens["access_token"]})
    assert wrong_type.status_code == 401
    assert wrong_type.json()["error"] == "Invalid token type"
    garbage = await client.post("/auth/refresh", json={"refresh_token": "garbage"})
    assert garbage.json()["error"] == "Invalid or expired refresh token"


async def test_me_and_change_password(api: httpx.AsyncClient, client: httpx.AsyncClient) -> None:
    me = await api.get("/auth/me")
    assert me.status_code == 200
    assert me.json()["data"]["login"] == "alice"
    bad = await api.post(
        "/auth/change-password", json={"current_password": "wrong", "new_password": "newpassword1"}
    )
    assert bad.status_code == 401
    assert bad.json()["error"] == "Invalid current password"
    ok = await api.post(
        "/auth/change-password", json={"current_password": TEST_PASSWORD, "new_password": "newpassword1"}
    )
    assert ok.status_code == 200
    assert ok.json() == {"data": {"success": True, "message": "Password changed successfully"}}
    relog = await client.post("/auth/login", json={"login": "alice", "password": "newpassword1"})
    assert relog.status_code == 200


async def test_refresh_token_cannot_call_protected_routes(
    client: httpx.AsyncClient, platform: Platform, user: models.Identity
) -> None:
    refresh = platform.tokens.refresh(user.id, user.login)
    response = await client.get("/auth/me", headers={"Authorization": f"Bearer {refresh}"})
    assert response.status_code == 401
    assert response.json() == {"error": {"code": 401, "message": "Invalid authentication token"}}


async def test_expired_token_is_reported(
    client: httpx.AsyncClient, platform: Platform, user: models.Identity
) -> None:
    token, _ = platform.tokens.issue(user.id, user.login, "access", -120)
    response = await client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "Authentication token expired"
    missing = await client.get("/auth/me")
    assert missing.json()["error"]["message"] == "Missing authentication token"


async def test_sensor_token_creates_sensor_identity(
    client: httpx.AsyncClient, api: httpx.AsyncClient, platform: Platform
) -> None:
    platform.settings.security.service_token = SERVICE_TOKEN
    body = {"sensor_ref": "core.timer", "trigger_types": ["core.intervaltimer"], "ttl_seconds": 7200}
    response = await client.post(
        "/auth/internal/sensor-token", json=body, headers={"X-Attune-Service-Token": SERVICE_TOKEN}
    )
    assert response.status_code == 200
    data = response.json()["data"]
    claims = jwt.decode(data["token"], TEST_JWT_SECRET, algorithms=["HS256"])
    assert claims["login"] == "core.timer"
    assert claims["token_type"] == "sensor" and claims["scope"] == "sensor"
    assert claims["metadata"] == {"sensor_ref": "core.timer", "trigger_types": ["core.intervaltimer"]}
    assert abs(claims["exp"] - time.time() - 7200) < 5
    assert data["expires_at"].endswith("+00:00")
    # The sensor token is accepted on the routes a sensor needs.
    me = await client.get("/auth/me", headers={"Authorization": f"Bearer {data['token']}"})
    assert me.status_code == 200
    assert me.json()["data"]["login"] == "sensor:core.timer"
    too_short = await api.post(
        "/auth/sensor-token",
        json={**body, "ttl_seconds": 60},
        headers={"X-Attune-Service-Token": SERVICE_TOKEN},
    )
    assert too_short.status_code == 422
