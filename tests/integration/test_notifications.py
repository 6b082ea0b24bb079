"""Notifications: the WebSocket feed (auth, filters, order) and the execution SSE stream.

Served by a real uvicorn on a free port in the test's event loop, so the bus, the hub and the
WebSocket protocol (uvicorn on the ``websockets`` package) all take part; the client is
``attune.testing.wsclient``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import uvicorn

from attune.api.routes import notifications as routes
from attune.db import models
from attune.db.models import Identity
from attune.messaging.messages import (
    ChangeNotification,
    MessageType,
    change_notification_routing,
    make_envelope,
)
from attune.notifier.hub import Notification, NotificationHub
from attune.notifier.service import WS_IMPLEMENTATION, create_notifier_app
from attune.platform import Platform
from attune.services.http import QuietServer
from attune.testing.deployment import free_port
from attune.testing.wsclient import ConnectionClosed, WebSocketClient, WebSocketRefused

WS_PATH = "/api/v1/notifications/ws"


async def _serve(app: Any) -> AsyncIterator[str]:
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        lifespan="off",
        log_level="warning",
        ws=WS_IMPLEMENTATION,
        timeout_graceful_shutdown=5,
    )
    server = QuietServer(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "uvicorn did not start"
        await asyncio.sleep(0.01)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def served(app: Any) -> AsyncIterator[str]:
    """``host:port`` of the API app served by uvicorn."""
    async for address in _serve(app):
        yield address


@pytest.fixture
def token(platform: Platform, user: Identity) -> str:
    return platform.tokens.access(user.id, user.login)


async def publish(
    platform: Platform, channel: str, entity_type: str, entity_id: int | None, **extra: Any
) -> None:
    """Put one change notification on the bus, as the outbox relay does."""
    message = ChangeNotification(
        notification_type=channel,
        entity_type=entity_type,
        entity_id=entity_id,
        user_id=extra.pop("user_id", None),
        payload={"entity_type": entity_type, "entity_id": entity_id, **extra},
        timestamp=datetime.now(UTC),
    )
    envelope = make_envelope(MessageType.CHANGE_NOTIFICATION, message, source_service="test")
    exchange, key = change_notification_routing(channel)
    await platform.bus.publish(exchange, key, envelope)


async def connect(served: str, token: str, path: str = WS_PATH) -> WebSocketClient:
    client = await WebSocketClient.connect(f"ws://{served}{path}?token={token}")
    welcome = await client.recv_json()
    assert welcome["type"] == "welcome"
    assert welcome["client_id"].startswith("client_")
    return client


async def subscribe(client: WebSocketClient, filter_: str, kind: str = "subscribe") -> None:
    await client.send_json({"type": kind, "filter": filter_})
    assert await client.recv_json() == {"type": f"{kind}d", "filter": filter_}


async def received(client: WebSocketClient, quiet: float = 0.3) -> list[dict[str, Any]]:
    """Every message until the connection stays quiet for ``quiet`` seconds."""
    messages: list[dict[str, Any]] = []
    while True:
        try:
            messages.append(await client.recv_json(timeout=quiet))
        except TimeoutError:
            return messages


# --------------------------------------------------------------------------- authentication


async def test_upgrade_without_a_valid_query_token_is_refused(served: str, platform: Platform) -> None:
    for bad in ("not-a-jwt", platform.tokens.refresh(1, "alice")):
        with pytest.raises(WebSocketRefused) as refused:
            await WebSocketClient.connect(f"ws://{served}{WS_PATH}?token={bad}")
        assert refused.value.status == 403


async def test_without_a_query_token_the_first_message_must_authenticate(served: str, token: str) -> None:
    async with await WebSocketClient.connect(f"ws://{served}{WS_PATH}") as client:
        await client.send_json({"type": "subscribe", "filter": "all"})
        with pytest.raises(ConnectionClosed) as closed:
            await client.recv()
        assert closed.value.code == 4401
    async with await WebSocketClient.connect(f"ws://{served}{WS_PATH}") as client:
        await client.send_json({"type": "auth", "token": "forged"})
        with pytest.raises(ConnectionClosed) as closed:
            await client.recv()
        assert closed.value.code == 4401
    async with await WebSocketClient.connect(f"ws://{served}{WS_PATH}") as client:
        await client.send_json({"type": "auth", "token": token})
        assert (await client.recv_json())["type"] == "welcome"


# --------------------------------------------------------------------------- filters


async def test_a_client_without_filters_receives_nothing(served: str, token: str, platform: Platform) -> None:
    async with await connect(served, token) as client:
        await publish(platform, "execution_created", "execution", 1, status="requested")
        assert await received(client) == []


async def test_filters_select_notifications(served: str, token: str, platform: Platform) -> None:
    cases: dict[str, set[int]] = {
        "all": {1, 2, 3, 4},
        "entity_type:execution": {1, 2},
        "entity:execution:2": {2},
        "notification_type:event_created": {3},
        "user:7": {4},
        "user_id:7": {4},
    }
    clients = {f: await connect(served, token) for f in cases}
    try:
        for filter_, client in clients.items():
            await subscribe(client, filter_)
        await publish(platform, "execution_created", "execution", 1, status="requested")
        await publish(platform, "execution_status_changed", "execution", 2, status="running")
        await publish(platform, "event_created", "event", 3)
        await publish(platform, "enforcement_created", "enforcement", 4, user_id=7)
        for filter_, client in clients.items():
            got = {m["entity_id"] for m in await received(client)}
            assert got == cases[filter_], filter_
    finally:
        for client in clients.values():
            await client.close()


async def test_envelope_shape_and_unsubscribe(served: str, token: str, platform: Platform) -> None:
    async with await connect(served, token) as client:
        await subscribe(client, "entity_type:execution")
        await subscribe(client, "entity_type:execution")  # a duplicate is a no-op
        await publish(platform, "execution_created", "execution", 5, status="requested")
        [message] = await received(client)
        assert set(message) == {
            "notification_type",
            "entity_type",
            "entity_id",
            "user_id",
            "payload",
            "timestamp",
        }
        assert message["notification_type"] == "execution_created"
        assert message["payload"]["status"] == "requested"
        await subscribe(client, "entity_type:execution", "unsubscribe")
        await publish(platform, "execution_created", "execution", 6, status="requested")
        assert await received(client) == []


async def test_bad_messages_get_an_error_and_ping_a_pong(served: str, token: str) -> None:
    async with await connect(served, token) as client:
        await client.send_text("{not json")
        assert (await client.recv_json())["type"] == "error"
        for bad in ("entity:execution:x", "colour:blue", "", "entity_type:"):
            await client.send_json({"type": "subscribe", "filter": bad})
            assert (await client.recv_json())["type"] == "error", bad
        await client.send_bytes(b"\x00\x01")  # ignored
        await client.send_json({"type": "ping"})
        assert await client.recv_json() == {"type": "pong"}


async def test_order_is_kept_and_a_slow_subscriber_loses_the_oldest(platform: Platform) -> None:
    hub = NotificationHub(platform.bus)
    fast = hub.subscribe()
    slow = hub.subscribe(capacity=2)
    try:
        await hub.start()
        for entity_id in range(1, 6):
            await publish(platform, "execution_status_changed", "execution", entity_id)
        got: list[int | None] = []
        for _ in range(5):
            item = await fast.get(timeout=5)
            assert item is not None
            got.append(item.entity_id)
        # The slow subscriber reads nothing until the end: it keeps the newest two, in order.
        assert got == [1, 2, 3, 4, 5]
        assert slow.dropped == 3
        tail = [(await slow.get(timeout=1)) for _ in range(2)]
        assert [n.entity_id for n in tail if n is not None] == [4, 5]
    finally:
        await hub.close()
    assert fast.closed and await fast.get() is None


async def test_real_changes_reach_subscribers_small(
    served: str, token: str, platform: Platform, api: httpx.AsyncClient
) -> None:
    async with platform.db.transaction() as session:
        pack = models.Pack(ref="ntf", label="ntf", version="1.0.0")
        session.add(pack)
        await session.flush()
        session.add(
            models.Action(
                ref="ntf.act", pack=pack.id, pack_ref="ntf", label="act", description="", entrypoint="x"
            )
        )
    async with await connect(served, token) as client:
        await subscribe(client, "entity_type:execution")
        response = await api.post("/api/v1/executions/execute", json={"action_ref": "ntf.act"})
        assert response.status_code == 201, response.text
        execution_id = response.json()["data"]["id"]
        [created] = [m for m in await received(client) if m["notification_type"] == "execution_created"]
        assert created["entity_id"] == execution_id
        assert created["payload"]["status"] == "requested"
        big = {"blob": "x" * (5 * 1024 * 1024)}
        async with platform.db.transaction() as session:
            await session.execute(
                sa.update(models.Execution)
                .where(models.Execution.id == execution_id)
                .values(status="completed", result=big)
            )
        changes = [m for m in await received(client) if m["notification_type"] == "execution_status_changed"]
        assert [(m["payload"]["old_status"], m["payload"]["status"]) for m in changes][-1] == (
            "requested",
            "completed",
        )
        assert all(len(json.dumps(m)) < 4096 for m in changes)


# --------------------------------------------------------------------------- the standalone notifier app


async def test_notifier_app_serves_ws_health_and_stats(platform: Platform, token: str) -> None:
    async for address in _serve(create_notifier_app(platform)):
        async with httpx.AsyncClient(base_url=f"http://{address}") as http:
            assert (await http.get("/health")).json() == {"status": "ok"}
            async with await connect(address, token, "/ws") as client:
                await subscribe(client, "all")
                await subscribe(client, "entity_type:event")
                assert (await http.get("/stats")).json() == {"connected_clients": 1, "total_subscriptions": 2}
                await publish(platform, "event_created", "event", 9)
                [message] = await received(client)
                assert message["entity_id"] == 9
            await asyncio.sleep(0.1)
            assert (await http.get("/stats")).json()["connected_clients"] == 0


# --------------------------------------------------------------------------- SSE


async def _sse_lines(response: httpx.Response, stop_after: int, timeout: float = 5.0) -> list[str]:  # noqa: ASYNC109
    """Raw lines of the stream, until ``stop_after`` ``data:`` frames have arrived."""
    lines: list[str] = []
    async with asyncio.timeout(timeout):
        async for line in response.aiter_lines():
            lines.append(line)
            if sum(1 for item in lines if item.startswith("data: ")) >= stop_after:
                break
    return lines


async def test_sse_requires_a_token(served: str, platform: Platform) -> None:
    async with httpx.AsyncClient(base_url=f"http://{served}") as http:
        missing = await http.get("/api/v1/executions/stream")
        assert missing.status_code == 401
        assert "error" in missing.json()
        forged = await http.get("/api/v1/executions/stream", params={"token": "forged"})
        assert forged.status_code == 401


async def test_sse_frames_and_execution_id_filter(served: str, platform: Platform, user: Identity) -> None:
    access = platform.tokens.access(user.id, user.login)
    async with httpx.AsyncClient(base_url=f"http://{served}") as http:
        refused = await http.get(
            "/api/v1/executions/stream", params={"token": platform.tokens.refresh(user.id, user.login)}
        )
        assert refused.status_code == 401
        params = {"token": access, "execution_id": "2"}
        async with http.stream("GET", "/api/v1/executions/stream", params=params) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            await publish(platform, "execution_created", "execution", 1, status="requested")
            await publish(platform, "event_created", "event", 2)
            await publish(platform, "execution_created", "execution", 2, status="requested")
            await publish(platform, "execution_status_changed", "execution", 2, status="running")
            lines = await _sse_lines(response, 2)
        frames = [json.loads(line[len("data: ") :]) for line in lines if line.startswith("data: ")]
        assert [(f["entity_id"], f["payload"]["status"]) for f in frames] == [
            (2, "requested"),
            (2, "running"),
        ]
        assert all(line in ("", ":") or line.startswith("data: ") for line in lines)
        assert lines[0] == ":"


async def test_sse_sends_keepalives(served: str, token: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(routes, "KEEPALIVE_SECONDS", 0.1)
    async with httpx.AsyncClient(base_url=f"http://{served}") as http:
        async with http.stream("GET", "/api/v1/executions/stream", params={"token": token}) as response:
            lines: list[str] = []
            async with asyncio.timeout(5):
                async for line in response.aiter_lines():
                    lines.append(line)
                    if lines.count(":") >= 3:
                        break
    assert lines.count(":") >= 3


def test_notification_of_reads_user_id_from_the_payload() -> None:
    notification = Notification.of({"entity_type": "x", "payload": {"user_id": 3}})
    assert notification.user_id == 3
