"""/auth/* behaviour (api.md §2)."""

from __future__ import annotations

import time

import httpx
import jwt

from attune.db import models
from attune.runtime import Runtime
from tests.conftest import TEST_JWT_SECRET, TEST_PASSWORD


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


async def test_register_then_duplicate(client: httpx.AsyncClient) -> None:
    body = {"login": "carol", "password": "longenough", "display_name": "Carol"}
    first = await client.post("/auth/register", json=body)
    assert first.status_code == 200
    assert first.json()["data"]["user"]["login"] == "carol"
    again = await client.post("/auth/register", json=body)
    assert again.status_code == 409
    assert again.json() == {"error": "Identity with login 'carol' already exists", "code": "CONFLICT"}
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
    client: httpx.AsyncClient, runtime: Runtime, user: models.Identity
) -> None:
    refresh = runtime.tokens.refresh(user.id, user.login)
    response = await client.get("/auth/me", headers={"Authorization": f"Bearer {refresh}"})
    assert response.status_code == 401
    assert response.json() == {"error": {"code": 401, "message": "Invalid authentication token"}}


async def test_expired_token_is_reported(
    client: httpx.AsyncClient, runtime: Runtime, user: models.Identity
) -> None:
    token, _ = runtime.tokens.issue(user.id, user.login, "access", -120)
    response = await client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "Authentication token expired"
    missing = await client.get("/auth/me")
    assert missing.json()["error"]["message"] == "Missing authentication token"


async def test_sensor_token_creates_sensor_identity(
    client: httpx.AsyncClient, api: httpx.AsyncClient
) -> None:
    body = {"sensor_ref": "core.timer", "trigger_types": ["core.intervaltimer"], "ttl_seconds": 7200}
    response = await client.post("/auth/internal/sensor-token", json=body)
    assert response.status_code == 200
    data = response.json()["data"]
    claims = jwt.decode(data["token"], TEST_JWT_SECRET, algorithms=["HS256"])
    assert claims["login"] == "core.timer"
    assert claims["token_type"] == "sensor" and claims["scope"] == "sensor"
    assert claims["metadata"] == {"trigger_types": ["core.intervaltimer"]}
    assert abs(claims["exp"] - time.time() - 7200) < 5
    assert data["expires_at"].endswith("+00:00")
    # The sensor token is accepted on protected routes.
    me = await client.get("/auth/me", headers={"Authorization": f"Bearer {data['token']}"})
    assert me.status_code == 200
    assert me.json()["data"]["login"] == "sensor:core.timer"
    too_short = await api.post("/auth/sensor-token", json={**body, "ttl_seconds": 60})
    assert too_short.status_code == 422
