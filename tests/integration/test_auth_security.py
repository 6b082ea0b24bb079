"""Regression tests for the sign-in holes of issue #10 (docs/security.md).

Each test names the defect it pins: the anonymous sensor-token mint, tokens outliving a password
change, unthrottled password guessing, login timing that told which logins exist, a development
server reachable from the network with a published password, and production starting on defaults.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher, Type

from attune.api.app import create_app
from attune.auth import sessions
from attune.auth.passwords import dummy_hash, hash_password
from attune.auth.service import mint_sensor_token
from attune.auth.sessions import LoginThrottle
from attune.bootstrap import DEFAULT_LOGIN, DEFAULT_PASSWORD, ensure_default_user
from attune.db import models
from attune.db.repos import identities
from attune.errors import ConfigError
from attune.platform import Platform
from attune.startup import check_startup
from tests.conftest import TEST_PASSWORD

SERVICE_TOKEN = "service-credential-0123456789abcdef0123456789"
SENSOR_BODY = {"sensor_ref": "core.timer", "trigger_types": ["core.intervaltimer"]}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def peer(app: Any, ip: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(ip, 40000)), base_url="http://t")


# --------------------------------------------------------------------------- service credentials


async def test_anonymous_sensor_token_mint_is_refused(
    client: httpx.AsyncClient, api: httpx.AsyncClient, platform: Platform
) -> None:
    """Anyone reaching the port got a 72-hour token accepted by every route."""
    path = "/auth/internal/sensor-token"
    # No credential configured (production default): the route is closed to everybody.
    closed = await client.post(path, json=SENSOR_BODY, headers={"X-Attune-Service-Token": "x" * 40})
    assert closed.status_code == 401
    platform.settings.security.service_token = SERVICE_TOKEN
    for headers in ({}, {"X-Attune-Service-Token": "y" * 45}, bearer("garbage")):
        refused = await client.post(path, json=SENSOR_BODY, headers=headers)
        assert refused.status_code == 401, headers
        assert "Service credential required" in refused.text
    # Refused before the body is looked at: a bad body tells an anonymous caller nothing more.
    assert (await client.post(path, json={})).status_code == 401
    # A user's access token is not the service credential.
    assert (await api.post("/auth/sensor-token", json=SENSOR_BODY)).status_code == 401
    async with platform.db.session() as session:
        assert await identities.by_login(session, "sensor:core.timer") is None
    # With the credential, as a header or as the bearer of the internal route.
    for headers in ({"X-Attune-Service-Token": SERVICE_TOKEN}, bearer(SERVICE_TOKEN)):
        minted = await client.post(path, json=SENSOR_BODY, headers=headers)
        assert minted.status_code == 200, headers
    with_user = await api.post(
        "/auth/sensor-token", json=SENSOR_BODY, headers={"X-Attune-Service-Token": SERVICE_TOKEN}
    )
    assert with_user.status_code == 200


async def test_sensor_token_reaches_only_what_a_sensor_needs(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    """A sensor token ran shell commands through POST /executions/execute."""
    _identity, token, _expires = await mint_sensor_token(
        platform.db, platform.tokens, "demo.watcher", ["demo.tick"], 3600
    )
    execute = await client.post(
        "/api/v1/executions/execute", json={"action_ref": "core.echo"}, headers=bearer(token)
    )
    assert execute.status_code == 403
    assert execute.json() == {"error": "A sensor token cannot call this route", "code": "FORBIDDEN"}
    assert (await client.get("/api/v1/executions", headers=bearer(token))).status_code == 403
    assert (await client.get("/api/v1/identities/1", headers=bearer(token))).status_code in (403, 404)
    assert (await client.put("/api/v1/rules/demo.x", json={}, headers=bearer(token))).status_code == 403
    # Reading the automation it serves is fine.
    assert (await client.get("/api/v1/packs/core", headers=bearer(token))).status_code != 403
    assert (await client.get("/api/v1/triggers", headers=bearer(token))).status_code == 200
    assert (await client.delete("/api/v1/packs/core", headers=bearer(token))).status_code == 403
    other_trigger = await client.post(
        "/api/v1/events", json={"trigger_ref": "core.intervaltimer"}, headers=bearer(token)
    )
    assert other_trigger.status_code == 403
    assert "demo.tick" not in other_trigger.text and "core.intervaltimer" in other_trigger.text
    # Nor does it watch every execution through the notification stream.
    assert (await client.get("/api/v1/executions/stream", params={"token": token})).status_code == 401
    assert (await client.get("/auth/me", headers=bearer(token))).status_code == 200


# --------------------------------------------------------------------------- sessions


async def test_password_change_revokes_earlier_tokens(
    client: httpx.AsyncClient, user: models.Identity
) -> None:
    """Old access and refresh tokens kept working after a password change."""
    login = await client.post("/auth/login", json={"login": "alice", "password": TEST_PASSWORD})
    old = login.json()["data"]
    assert (await client.get("/auth/me", headers=bearer(old["access_token"]))).status_code == 200
    changed = await client.post(
        "/auth/change-password",
        json={"current_password": TEST_PASSWORD, "new_password": "a-new-passw0rd"},
        headers=bearer(old["access_token"]),
    )
    assert changed.status_code == 200
    revoked = await client.get("/auth/me", headers=bearer(old["access_token"]))
    assert revoked.status_code == 401
    assert revoked.json() == {"error": {"code": 401, "message": "Authentication token revoked"}}
    stale = await client.post("/auth/refresh", json={"refresh_token": old["refresh_token"]})
    assert stale.status_code == 401
    relog = await client.post("/auth/login", json={"login": "alice", "password": "a-new-passw0rd"})
    fresh = relog.json()["data"]
    assert (await client.get("/auth/me", headers=bearer(fresh["access_token"]))).status_code == 200
    renewed = await client.post("/auth/refresh", json={"refresh_token": fresh["refresh_token"]})
    assert renewed.status_code == 200


async def test_tokens_of_a_deleted_identity_are_refused(
    client: httpx.AsyncClient, platform: Platform, user: models.Identity
) -> None:
    token = platform.tokens.access(user.id, user.login)
    async with platform.db.transaction() as session:
        row = await session.get(models.Identity, user.id)
        await session.delete(row)
    # The guard caches versions for a few seconds; a fresh app (another process) sees it at once.
    transport = httpx.ASGITransport(app=create_app(platform))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        assert (await c.get("/auth/me", headers=bearer(token))).status_code == 401


async def test_thirty_wrong_passwords_are_throttled(client: httpx.AsyncClient, user: models.Identity) -> None:
    """30 wrong passwords in a row were all answered 401, as fast as the hasher allowed."""
    statuses: list[int] = []
    last: httpx.Response | None = None
    for _ in range(30):
        last = await client.post("/auth/login", json={"login": "alice", "password": "wrong"})
        statuses.append(last.status_code)
    assert statuses[:10] == [401] * 10
    assert set(statuses[10:]) == {429}
    assert last is not None
    assert last.json()["code"] == "TOO_MANY_REQUESTS"
    assert 1 <= int(last.headers["Retry-After"]) <= 300
    # While throttled even the right password waits: guessing cannot continue by luck.
    right = await client.post("/auth/login", json={"login": "alice", "password": TEST_PASSWORD})
    assert right.status_code == 429


async def test_login_failures_are_throttled_per_client_address(
    app: Any, platform: Platform, user: models.Identity
) -> None:
    app.state.login_throttle = LoginThrottle(per_login=100, per_address=5, window=300)
    async with peer(app, "203.0.113.9") as attacker:
        statuses = [
            (await attacker.post("/auth/login", json={"login": f"user{i}", "password": "x"})).status_code
            for i in range(7)
        ]
    assert statuses == [401] * 5 + [429] * 2
    # Another address is not affected.
    async with peer(app, "198.51.100.4") as someone:
        ok = await someone.post("/auth/login", json={"login": "alice", "password": TEST_PASSWORD})
    assert ok.status_code == 200


def test_throttle_window_slides() -> None:
    throttle = LoginThrottle(per_login=2, per_address=10, window=60)
    throttle.failed("bob", "a", now=0)
    throttle.failed("bob", "a", now=10)
    assert throttle.retry_after("bob", "a", now=20) == 40
    assert throttle.retry_after("BOB", None, now=20) == 40
    assert throttle.retry_after("bob", "a", now=61) is None
    throttle.succeeded("bob")
    assert throttle.retry_after("bob", "a", now=20) is None


def test_throttle_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sessions, "MAX_TRACKED_KEYS", 100)
    throttle = LoginThrottle(per_login=2, per_address=10, window=60)
    for i in range(1000):
        throttle.failed(f"spray{i}", None, now=float(i) / 100)
    assert len(throttle._failures) <= 100
    # The latest attempts are still counted.
    throttle.failed("spray999", None, now=10)
    assert throttle.retry_after("spray999", None, now=10) is not None


class _SpyHasher(PasswordHasher):
    """Records every hash it verifies against."""

    def __init__(self) -> None:
        super().__init__(time_cost=2, memory_cost=19456, parallelism=1, type=Type.ID)
        self.verified: list[str] = []

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        self.verified.append(hash if isinstance(hash, str) else hash.decode())
        return super().verify(hash, password)


async def test_unknown_login_costs_a_password_verification(
    client: httpx.AsyncClient, platform: Platform, user: models.Identity
) -> None:
    """An unknown login answered in ~3 ms against ~30 ms for a known one: a login oracle."""
    spy = _SpyHasher()
    platform.hasher = spy
    unknown = await client.post("/auth/login", json={"login": "nobody", "password": "whatever"})
    assert unknown.status_code == 401
    assert spy.verified == [dummy_hash(spy)]
    # Same Argon2 parameters as a real password hash, so the work is the same.
    assert user.password_hash is not None
    assert dummy_hash(spy).split("$")[3] == user.password_hash.split("$")[3]
    # A known login with a wrong password: one verification too, against its own hash.
    spy.verified.clear()
    wrong = await client.post("/auth/login", json={"login": "alice", "password": "whatever"})
    assert (wrong.status_code, wrong.json()) == (401, unknown.json())
    assert spy.verified == [user.password_hash]
    # Identities without a password (sensors) take the dummy path as well.
    await mint_sensor_token(platform.db, platform.tokens, "demo.watcher", ["demo.tick"], 3600)
    spy.verified.clear()
    service = await client.post("/auth/login", json={"login": "sensor:demo.watcher", "password": "x"})
    assert service.status_code == 401
    assert spy.verified == [dummy_hash(spy)]


# --------------------------------------------------------------------------- start-up refusals


async def test_listening_beyond_loopback_with_the_default_password_is_refused(platform: Platform) -> None:
    """`make run` bound 0.0.0.0 with the published test@attune.local / TestPass123!."""
    await ensure_default_user(platform)
    server = platform.settings.server
    for host in ("127.0.0.1", "localhost", "::1"):
        server.host = host
        await check_startup(platform, serves_http=True)
    for host in ("0.0.0.0", "::", "192.168.1.20"):
        server.host = host
        with pytest.raises(ConfigError, match=rf"Refusing to listen on {host}: .*{DEFAULT_LOGIN}"):
            await check_startup(platform, serves_http=True)
    # Processes that do not listen (worker, executor) are not concerned.
    await check_startup(platform, serves_http=False)
    # Once the password is changed, listening anywhere is the operator's choice.
    new_hash = hash_password(platform.hasher, "not-the-published-one")
    async with platform.db.transaction() as session:
        row = await identities.by_login(session, DEFAULT_LOGIN)
        assert row is not None
        await identities.set_password(session, row, new_hash)
    await check_startup(platform, serves_http=True)


async def test_production_refuses_the_development_users_default_password(platform: Platform) -> None:
    await ensure_default_user(platform)
    platform.settings.environment = "production"
    platform.settings.security.jwt_secret = "j" * 40
    with pytest.raises(ConfigError, match=rf"{DEFAULT_LOGIN} still has its published default password"):
        await check_startup(platform, serves_http=False)
    platform.settings.security.allow_self_registration = True
    with pytest.raises(ConfigError, match=r"security\.allow_self_registration"):
        await check_startup(platform, serves_http=False)
    platform.settings.security.allow_self_registration = False
    async with platform.db.transaction() as session:
        row = await identities.by_login(session, DEFAULT_LOGIN)
        assert row is not None
        await session.delete(row)
    await check_startup(platform, serves_http=True)
    assert DEFAULT_PASSWORD  # the constant the refusal protects
