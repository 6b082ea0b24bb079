"""Webhooks (docs/api.md): key lifecycle and the public receive pipeline."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import re
import socket
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import uvicorn

from attune.api.service import uvicorn_config
from attune.db import models
from attune.messaging.messages import Envelope
from attune.messaging.topology import EVENTS_EXCHANGE, QueueSpec
from attune.platform import Platform
from attune.testing.clock import FakeClock

KEY_RE = re.compile(r"^wh_[0-9a-f]{32}$")
SECRET = "s3cret"


@pytest.fixture
async def trigger_id(platform: Platform) -> int:
    async with platform.db.transaction() as session:
        pack = models.Pack(ref="demo", label="Demo", version="1.0.0")
        session.add(pack)
        await session.flush()
        trigger = models.Trigger(ref="demo.hook", pack=pack.id, pack_ref="demo", label="Hook", enabled=True)
        session.add(trigger)
        await session.flush()
        return trigger.id


@pytest.fixture
async def events(platform: Platform) -> AsyncIterator[list[Envelope]]:
    """Every ``EventCreated`` published from now on."""
    received: list[Envelope] = []

    async def handler(envelope: Envelope) -> None:
        received.append(envelope)

    name = f"test.webhooks.{uuid.uuid4().hex[:8]}"
    await platform.bus.declare_queue(QueueSpec(name, ((EVENTS_EXCHANGE, "event.created"),)))
    consumer = await platform.bus.consume(name, handler)
    yield received
    await consumer.cancel()


async def enable(api: httpx.AsyncClient) -> str:
    response = await api.post("/api/v1/triggers/demo.hook/webhooks/enable")
    assert response.status_code == 200
    key: str = response.json()["data"]["webhook_key"]
    return key


async def put_config(api: httpx.AsyncClient, config: dict[str, Any]) -> None:
    response = await api.put("/api/v1/triggers/demo.hook/webhooks/config", json=config)
    assert response.status_code == 200, response.text


async def configure(platform: Platform, trigger_id: int, config: dict[str, Any]) -> None:
    """Provision webhook_config out of band (configs written before the config route existed)."""
    async with platform.db.transaction() as session:
        trigger = await session.get(models.Trigger, trigger_id)
        assert trigger is not None
        trigger.webhook_config = config


def sign(raw: bytes, secret: str = SECRET, algorithm: str = "sha256") -> str:
    return hmac.new(secret.encode(), raw, getattr(hashlib, algorithm)).hexdigest()


async def test_enable_disable_regenerate(api: httpx.AsyncClient, trigger_id: int, platform: Platform) -> None:
    await configure(platform, trigger_id, {"hmac": {"enabled": True}})
    first = await api.post("/api/v1/triggers/demo.hook/webhooks/enable")
    assert first.status_code == 200
    body = first.json()
    assert "message" not in body
    assert body["data"]["webhook_enabled"] is True
    assert body["data"]["ref"] == "demo.hook"
    key = body["data"]["webhook_key"]
    assert KEY_RE.match(key)
    async with platform.db.session() as session:
        trigger = await session.get(models.Trigger, trigger_id)
        # Attune change: enabling keeps the security configuration (docs/api.md reset it).
        assert trigger is not None and trigger.webhook_config == {"hmac": {"enabled": True}}

    again = (await api.post("/api/v1/triggers/demo.hook/webhooks/enable")).json()["data"]
    assert again["webhook_key"] == key  # an existing key is kept

    regenerated = (await api.post("/api/v1/triggers/demo.hook/webhooks/regenerate")).json()["data"]
    assert KEY_RE.match(regenerated["webhook_key"]) and regenerated["webhook_key"] != key
    old = await api.post(f"/api/v1/webhooks/{key}", json={"payload": {}})
    assert old.status_code == 404

    disabled = await api.post("/api/v1/triggers/demo.hook/webhooks/disable")
    assert disabled.status_code == 200
    assert disabled.json()["data"]["webhook_enabled"] is False
    assert "webhook_key" not in disabled.json()["data"]
    refused = await api.post("/api/v1/triggers/demo.hook/webhooks/regenerate")
    assert refused.status_code == 400
    assert refused.json() == {
        "error": "Webhooks are not enabled for this trigger. Enable webhooks first.",
        "code": "BAD_REQUEST",
    }
    for op in ("enable", "disable", "regenerate"):
        missing = await api.post(f"/api/v1/triggers/demo.ghost/webhooks/{op}")
        assert missing.status_code == 404
        assert missing.json()["error"] == "Trigger 'demo.ghost' not found"


async def test_management_needs_a_token(client: httpx.AsyncClient, trigger_id: int) -> None:
    response = await client.post("/api/v1/triggers/demo.hook/webhooks/enable")
    assert response.status_code == 401


async def test_receive_creates_event_and_publishes(
    api: httpx.AsyncClient,
    client: httpx.AsyncClient,
    trigger_id: int,
    platform: Platform,
    events: list[Envelope],
) -> None:
    key = await enable(api)
    raw = json.dumps({"payload": {"n": 1}, "headers": {"x": "y"}, "source_ip": "ignored"}).encode()
    response = await client.post(
        f"/api/v1/webhooks/{key}",
        content=raw,
        headers={"Content-Type": "text/plain", "User-Agent": "curl/8", "X-Real-IP": "10.1.2.3"},
    )
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["trigger_ref"] == "demo.hook"
    assert data["message"] == "Webhook received successfully"
    assert data["received_at"].endswith("Z")
    async with platform.db.session() as session:
        event = await session.get(models.Event, data["event_id"])
    assert event is not None
    assert (event.trigger, event.trigger_ref) == (trigger_id, "demo.hook")
    assert (event.source, event.source_ref, event.rule) == (None, "webhook", None)
    assert event.payload == {"n": 1}
    assert event.config == {
        "source": "webhook",
        "webhook_key": key,
        "received_at": data["received_at"],
        "headers": {"x": "y"},
        "source_ip": "127.0.0.1",  # the socket peer: X-Real-IP from an untrusted peer is ignored
        "user_agent": "curl/8",
    }
    await platform.relay.flush()
    await platform.bus.join(timeout=10)
    assert len(events) == 1
    assert events[0].headers.source_service == "api-webhook-receiver"
    assert events[0].payload["event_id"] == data["event_id"]
    assert events[0].payload["trigger_id"] == trigger_id
    assert events[0].payload["trigger_ref"] == "demo.hook"
    assert events[0].payload["payload"] == {"n": 1}


async def test_null_payload_is_accepted(
    api: httpx.AsyncClient,
    client: httpx.AsyncClient,
    trigger_id: int,
    platform: Platform,
    events: list[Envelope],
) -> None:
    key = await enable(api)
    response = await client.post(f"/api/v1/webhooks/{key}", content=b'{"payload": null}')
    assert response.status_code == 200
    await platform.relay.flush()
    await platform.bus.join(timeout=10)
    assert events[0].payload["payload"] == {}


async def test_receive_rejections(
    api: httpx.AsyncClient, client: httpx.AsyncClient, trigger_id: int, platform: Platform
) -> None:
    key = await enable(api)
    for raw in (b"{not json", b'{"headers": {}}', b"[1, 2]"):
        bad = await client.post(f"/api/v1/webhooks/{key}", content=raw)
        assert bad.status_code == 400, raw
        assert bad.json()["code"] == "BAD_REQUEST"
        assert bad.json()["error"].startswith("Invalid JSON payload: ")
    # The body is parsed before the key is looked up.
    assert (await client.post("/api/v1/webhooks/wh_nope", content=b"oops")).status_code == 400
    unknown = await client.post("/api/v1/webhooks/wh_nope", json={"payload": 1})
    assert unknown.status_code == 404
    assert unknown.json() == {"error": "Invalid webhook key", "code": "NOT_FOUND"}

    async with platform.db.transaction() as session:
        trigger = await session.get(models.Trigger, trigger_id)
        assert trigger is not None
        trigger.webhook_enabled = False
    off = await client.post(f"/api/v1/webhooks/{key}", json={"payload": 1})
    assert off.status_code == 400
    assert off.json()["error"] == "Webhooks are not enabled for this trigger"
    async with platform.db.session() as session:
        assert (await session.execute(sa.select(sa.func.count()).select_from(models.Event))).scalar_one() == 0


async def test_payload_size_limit_is_413(
    api: httpx.AsyncClient, client: httpx.AsyncClient, trigger_id: int, platform: Platform
) -> None:
    key = await enable(api)
    await put_config(api, {"payload_size_limit_kb": 1})
    small = await client.post(f"/api/v1/webhooks/{key}", json={"payload": "x" * 100})
    assert small.status_code == 200
    big = await client.post(f"/api/v1/webhooks/{key}", json={"payload": "x" * 1100})
    assert big.status_code == 413
    assert big.json() == {"error": "Payload too large. Maximum size: 1 KB", "code": "PAYLOAD_TOO_LARGE"}
    # The size is checked before the body is parsed.
    garbage = await client.post(f"/api/v1/webhooks/{key}", content=b"{" * 2000)
    assert garbage.status_code == 413
    async with platform.db.session() as session:
        assert (await session.execute(sa.select(sa.func.count()).select_from(models.Event))).scalar_one() == 1


def peer(app: Any, ip: str) -> httpx.AsyncClient:
    """A client whose requests arrive from the socket address ``ip``."""
    transport = httpx.ASGITransport(app=app, client=(ip, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://attune.test")


ALLOW_LIST = {"ip_whitelist": {"enabled": True, "ips": ["192.168.1.10", "10.0.0.0/8", "2001:db8::/32"]}}


async def test_ip_allow_list_uses_the_socket_peer(
    api: httpx.AsyncClient, app: Any, trigger_id: int, platform: Platform
) -> None:
    key = await enable(api)
    await put_config(api, ALLOW_LIST)
    url = f"/api/v1/webhooks/{key}"
    for ip in ("192.168.1.10", "10.20.30.40", "2001:db8::1"):
        async with peer(app, ip) as caller:
            assert (await caller.post(url, json={"payload": {}})).status_code == 200, ip
    for ip in ("192.168.1.11", "11.0.0.1", "2001:db9::1", "not-an-ip"):
        async with peer(app, ip) as caller:
            denied = await caller.post(url, json={"payload": {}})
        assert denied.status_code == 403, ip
        assert denied.json() == {"error": "IP address not allowed", "code": "FORBIDDEN"}
    # Without trusted proxies, forwarding headers cannot smuggle an allowed address in.
    async with peer(app, "8.8.8.8") as caller:
        spoofed = await caller.post(
            url, json={"payload": {}}, headers={"X-Forwarded-For": "10.0.0.1", "X-Real-IP": "10.0.0.1"}
        )
    assert spoofed.status_code == 403


async def test_ip_allow_list_behind_a_trusted_proxy(
    api: httpx.AsyncClient, app: Any, trigger_id: int, platform: Platform
) -> None:
    key = await enable(api)
    await put_config(api, ALLOW_LIST)
    platform.settings.server.trusted_proxies = ["127.0.0.1/32", "172.16.0.0/12"]
    url = f"/api/v1/webhooks/{key}"

    async def status(headers: dict[str, str], ip: str = "127.0.0.1") -> int:
        async with peer(app, ip) as caller:
            return (await caller.post(url, json={"payload": {}}, headers=headers)).status_code

    assert await status({"X-Forwarded-For": "10.20.30.40"}) == 200
    assert await status({"X-Forwarded-For": "8.8.8.8"}) == 403
    # Read from the right, skipping trusted hops: the client is the last untrusted address.
    assert await status({"X-Forwarded-For": "8.8.8.8, 10.1.1.1, 172.16.0.5"}) == 200
    assert await status({"X-Forwarded-For": "10.1.1.1, 8.8.8.8"}) == 403
    assert await status({"X-Real-IP": "10.9.9.9"}) == 200
    assert await status({"X-Real-IP": "8.8.8.8"}) == 403
    # X-Forwarded-For wins over X-Real-IP; an unparsable client address is refused.
    assert await status({"X-Forwarded-For": "8.8.8.8", "X-Real-IP": "10.0.0.1"}) == 403
    assert await status({"X-Forwarded-For": "garbage"}) == 403
    # The trusted proxy itself is not on the list.
    assert await status({}) == 403
    # An untrusted peer's headers are still ignored.
    assert await status({"X-Forwarded-For": "10.0.0.1"}, ip="8.8.8.8") == 403
    async with platform.db.session() as session:
        recorded = (
            await session.execute(sa.select(models.Event.config).order_by(models.Event.id).limit(1))
        ).scalar_one()
    assert recorded["source_ip"] == "10.20.30.40"


async def test_rate_limit_is_enforced_with_retry_after(
    api: httpx.AsyncClient, client: httpx.AsyncClient, trigger_id: int, platform: Platform
) -> None:
    key = await enable(api)
    await put_config(api, {"rate_limit": {"enabled": True, "requests": 2, "window_seconds": 60}})
    url = f"/api/v1/webhooks/{key}"
    assert (await client.post(url, json={"payload": 1})).status_code == 200
    assert (await client.post(url, json={"payload": 2})).status_code == 200
    limited = await client.post(url, json={"payload": 3})
    assert limited.status_code == 429
    assert limited.json() == {
        "error": "Rate limit exceeded: 2 requests per 60 seconds",
        "code": "TOO_MANY_REQUESTS",
    }
    assert 55 <= int(limited.headers["Retry-After"]) <= 60
    async with platform.db.session() as session:
        assert (await session.execute(sa.select(sa.func.count()).select_from(models.Event))).scalar_one() == 2


async def test_rate_limit_window_slides(
    api: httpx.AsyncClient,
    client: httpx.AsyncClient,
    trigger_id: int,
    platform: Platform,
    fake_clock: FakeClock,
) -> None:
    key = await enable(api)
    await put_config(api, {"rate_limit": {"enabled": True, "requests": 1, "window_seconds": 60}})
    url = f"/api/v1/webhooks/{key}"
    assert (await client.post(url, json={"payload": 1})).status_code == 200
    # Time passes on the platform clock only: the window and the events' stamps both follow it.
    fake_clock.advance(59)
    limited = await client.post(url, json={"payload": 2})
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "1"
    fake_clock.advance(1.5)
    assert (await client.post(url, json={"payload": 3})).status_code == 200
    assert (await client.post(url, json={"payload": 4})).status_code == 429
    # Disabling the limit lifts it at once.
    await put_config(api, {"rate_limit": {"enabled": False}})
    assert (await client.post(url, json={"payload": 4})).status_code == 200


async def test_hmac_signatures(
    api: httpx.AsyncClient, client: httpx.AsyncClient, trigger_id: int, platform: Platform
) -> None:
    key = await enable(api)
    await put_config(api, {"hmac": {"enabled": True, "secret": SECRET, "algorithm": "sha256"}})
    url = f"/api/v1/webhooks/{key}"
    raw = json.dumps({"payload": {"ok": True}}).encode()

    prefixed = await client.post(url, content=raw, headers={"X-Webhook-Signature": f"sha256={sign(raw)}"})
    assert prefixed.status_code == 200
    bare_github = await client.post(url, content=raw, headers={"X-Hub-Signature-256": sign(raw)})
    assert bare_github.status_code == 200
    async with platform.db.session() as session:
        event = await session.get(models.Event, prefixed.json()["data"]["event_id"])
    assert event is not None and event.config["hmac_verified"] is True

    missing = await client.post(url, content=raw)
    assert missing.status_code == 401
    assert missing.json() == {"error": "Signature required", "code": "UNAUTHORIZED"}
    wrong = await client.post(
        url, content=raw, headers={"X-Webhook-Signature": f"sha256={sign(raw, 'other')}"}
    )
    assert wrong.status_code == 401
    assert wrong.json() == {"error": "Invalid webhook signature", "code": "UNAUTHORIZED"}
    # The signature covers the raw body, not only the payload.
    tampered = raw.replace(b"true", b"false")
    assert (
        await client.post(url, content=tampered, headers={"X-Webhook-Signature": sign(raw)})
    ).status_code == 401
    other_algo = await client.post(
        url, content=raw, headers={"X-Webhook-Signature": f"sha1={sign(raw, algorithm='sha1')}"}
    )
    assert other_algo.status_code == 401
    assert other_algo.json()["error"].startswith("Signature verification failed: ")
    bad_hex = await client.post(url, content=raw, headers={"X-Webhook-Signature": "sha256=zz"})
    assert bad_hex.status_code == 401
    assert bad_hex.json()["error"].startswith("Signature verification failed: ")


async def test_hmac_sha512_and_incomplete_config(
    api: httpx.AsyncClient, client: httpx.AsyncClient, trigger_id: int, platform: Platform
) -> None:
    key = await enable(api)
    url = f"/api/v1/webhooks/{key}"
    raw = b'{"payload": 1}'
    await configure(
        platform, trigger_id, {"hmac": {"enabled": True, "secret": SECRET, "algorithm": "sha512"}}
    )
    ok = await client.post(url, content=raw, headers={"X-Webhook-Signature": sign(raw, algorithm="sha512")})
    assert ok.status_code == 200
    # Enabled without a secret: no signature is required, and the event records it was not verified.
    await configure(platform, trigger_id, {"hmac": {"enabled": True, "algorithm": "sha256"}})
    unsigned = await client.post(url, content=raw)
    assert unsigned.status_code == 200
    async with platform.db.session() as session:
        event = await session.get(models.Event, unsigned.json()["data"]["event_id"])
    assert event is not None and event.config["hmac_verified"] is False


async def test_pipeline_order_size_ip_rate_signature(
    api: httpx.AsyncClient, app: Any, trigger_id: int, platform: Platform
) -> None:
    key = await enable(api)
    await put_config(
        api,
        {
            "payload_size_limit_kb": 1,
            "ip_whitelist": {"enabled": True, "ips": ["10.0.0.1"]},
            "hmac": {"enabled": True, "secret": SECRET, "algorithm": "sha256"},
            "rate_limit": {"enabled": True, "requests": 1, "window_seconds": 60},
        },
    )
    url = f"/api/v1/webhooks/{key}"
    big = json.dumps({"payload": "x" * 2000}).encode()
    small = b'{"payload": {}}'
    async with peer(app, "8.8.8.8") as outsider, peer(app, "10.0.0.1") as insider:
        assert (await outsider.post(url, content=big)).status_code == 413
        assert (await outsider.post(url, content=small)).status_code == 403
        assert (await insider.post(url, content=small)).status_code == 401
        signed = {"X-Webhook-Signature": sign(small)}
        assert (await insider.post(url, content=small, headers=signed)).status_code == 200
        # Rejected calls did not use up the window; the accepted one did.
        assert (await insider.post(url, content=small, headers=signed)).status_code == 429
        assert (await insider.post(url, content=small)).status_code == 429


async def test_config_route_round_trip(
    api: httpx.AsyncClient, app: Any, trigger_id: int, platform: Platform
) -> None:
    empty = await api.get("/api/v1/triggers/demo.hook/webhooks/config")
    assert empty.status_code == 200
    assert empty.json() == {
        "data": {
            "hmac": {"enabled": False, "algorithm": "sha256", "secret_set": False},
            "ip_whitelist": {"enabled": False, "ips": []},
            "payload_size_limit_kb": None,
            "rate_limit": {"enabled": False, "requests": None, "window_seconds": None},
        }
    }
    config = {
        "hmac": {"enabled": True, "secret": SECRET, "algorithm": "sha512"},
        "ip_whitelist": {"enabled": True, "ips": ["10.0.0.0/8", " 2001:db8::1 "]},
        "payload_size_limit_kb": 64,
        "rate_limit": {"enabled": True, "requests": 10, "window_seconds": 30},
    }
    put = await api.put("/api/v1/triggers/demo.hook/webhooks/config", json=config)
    assert put.status_code == 200
    assert put.json()["message"] == "Webhook configuration updated successfully"
    expected = {
        "hmac": {"enabled": True, "algorithm": "sha512", "secret_set": True},
        "ip_whitelist": {"enabled": True, "ips": ["10.0.0.0/8", "2001:db8::1"]},
        "payload_size_limit_kb": 64,
        "rate_limit": {"enabled": True, "requests": 10, "window_seconds": 30},
    }
    assert put.json()["data"] == expected
    got = await api.get("/api/v1/triggers/demo.hook/webhooks/config")
    assert got.json()["data"] == expected
    assert SECRET not in got.text
    # The secret is write-only and encrypted at rest.
    async with platform.db.session() as session:
        trigger = await session.get(models.Trigger, trigger_id)
    assert trigger is not None and SECRET not in json.dumps(trigger.webhook_config)

    # Leaving the secret out keeps it; leaving a section out disables it.
    again = await api.put(
        "/api/v1/triggers/demo.hook/webhooks/config", json={"hmac": {"enabled": True, "algorithm": "sha1"}}
    )
    assert again.status_code == 200
    assert again.json()["data"]["hmac"] == {"enabled": True, "algorithm": "sha1", "secret_set": True}
    assert again.json()["data"]["ip_whitelist"] == {"enabled": False, "ips": []}
    assert again.json()["data"]["payload_size_limit_kb"] is None

    # The configuration survives disable / enable, and the receiver uses the kept secret.
    await api.post("/api/v1/triggers/demo.hook/webhooks/disable")
    key = await enable(api)
    raw = b'{"payload": 1}'
    async with peer(app, "127.0.0.1") as anonymous:
        ok = await anonymous.post(
            f"/api/v1/webhooks/{key}",
            content=raw,
            headers={"X-Webhook-Signature": sign(raw, algorithm="sha1")},
        )
        assert ok.status_code == 200
        assert (await anonymous.post(f"/api/v1/webhooks/{key}", content=raw)).status_code == 401


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"ip_whitelist": {"enabled": True, "ips": ["10.0.0.1", "10.0.0.0/33"]}}, "ip_whitelist.ips[1]"),
        ({"ip_whitelist": {"enabled": False, "ips": ["example.com"]}}, "ip_whitelist.ips[0]"),
        ({"ip_whitelist": {"enabled": True, "ips": []}}, "ip_whitelist.ips"),
        ({"hmac": {"enabled": True}}, "hmac.secret"),
        ({"hmac": {"enabled": False, "secret": ""}}, "hmac.secret"),
        ({"hmac": {"enabled": True, "secret": "x", "algorithm": "md5"}}, "hmac.algorithm"),
        ({"payload_size_limit_kb": 0}, "payload_size_limit_kb"),
        ({"rate_limit": {"enabled": True, "requests": 0, "window_seconds": 5}}, "rate_limit.requests"),
        ({"rate_limit": {"enabled": True, "requests": 5, "window_seconds": 0}}, "rate_limit.window_seconds"),
        ({"rate_limit": {"enabled": True}}, "rate_limit"),
    ],
)
async def test_config_validation(
    api: httpx.AsyncClient, trigger_id: int, config: dict[str, Any], field: str
) -> None:
    response = await api.put("/api/v1/triggers/demo.hook/webhooks/config", json=config)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "VALIDATION_ERROR"
    assert f"{field}:" in body["error"], body["error"]


async def test_config_route_errors(
    api: httpx.AsyncClient, client: httpx.AsyncClient, trigger_id: int
) -> None:
    for method in ("get", "put"):
        missing = await api.request(method, "/api/v1/triggers/demo.ghost/webhooks/config", json={})
        assert missing.status_code == 404
        assert missing.json()["error"] == "Trigger 'demo.ghost' not found"
        anonymous = await client.request(method, "/api/v1/triggers/demo.hook/webhooks/config", json={})
        assert anonymous.status_code == 401


@contextlib.asynccontextmanager
async def served(platform: Platform, app: Any) -> AsyncIterator[str]:
    """The app behind a real uvicorn on a free loopback port, configured as ``attune server`` does."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    platform.settings.server.host, platform.settings.server.port = "127.0.0.1", port
    server = uvicorn.Server(uvicorn_config(platform, app))
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(20):
            while not server.started:
                assert not task.done(), "uvicorn stopped before listening"
                await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def test_forwarded_for_from_an_untrusted_peer_is_ignored_by_the_real_server(
    api: httpx.AsyncClient, app: Any, trigger_id: int, platform: Platform
) -> None:
    """uvicorn trusted X-Forwarded-For from loopback although ``server.trusted_proxies`` was empty."""
    key = await enable(api)
    await put_config(api, ALLOW_LIST)
    forged = {"X-Forwarded-For": "10.0.0.1"}
    async with served(platform, app) as base, httpx.AsyncClient(base_url=base) as caller:
        response = await caller.post(f"/api/v1/webhooks/{key}", json={"payload": {}}, headers=forged)
    assert response.status_code == 403
    assert response.json() == {"error": "IP address not allowed", "code": "FORBIDDEN"}
    # Once loopback is a configured proxy, its forwarding header is believed.
    platform.settings.server.trusted_proxies = ["127.0.0.1/32"]
    async with served(platform, app) as base, httpx.AsyncClient(base_url=base) as caller:
        response = await caller.post(f"/api/v1/webhooks/{key}", json={"payload": {}}, headers=forged)
    assert response.status_code == 200
