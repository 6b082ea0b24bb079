"""Notifications deliver only what the subscriber may read (docs/security.md "Permission sets")."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from attune.platform import Platform
from attune.testing.wsclient import ConnectionClosed, WebSocketClient
from tests.identities import make_identity
from tests.integration.test_notifications import WS_PATH, _serve, connect, publish, received, subscribe


@pytest.fixture
async def served(app: Any) -> AsyncIterator[str]:
    async for address in _serve(app):
        yield address


async def _token(platform: Platform, login: str, password_hash: str, *sets: str) -> str:
    identity = await make_identity(platform, login, password_hash, *sets)
    return platform.tokens.access(identity.id, identity.login)


async def test_an_identity_without_rights_gets_no_notification_feed(
    served: str, platform: Platform, password_hash: str
) -> None:
    token = await _token(platform, "nina", password_hash)
    async with await WebSocketClient.connect(f"ws://{served}{WS_PATH}?token={token}") as client:
        with pytest.raises(ConnectionClosed) as closed:
            await client.recv()
        assert closed.value.code == 4403
    async with httpx.AsyncClient(base_url=f"http://{served}") as http:
        refused = await http.get("/api/v1/executions/stream", params={"token": token})
        assert refused.status_code == 403 and refused.json()["code"] == "FORBIDDEN"


async def test_a_subscription_sees_only_what_the_identity_may_read(
    served: str, platform: Platform, api: httpx.AsyncClient, password_hash: str
) -> None:
    grants = [
        {"resource": "notifications", "actions": ["read"]},
        {"resource": "events", "actions": ["read"]},
        {"resource": "executions", "actions": ["read"], "constraints": {"packs": ["demo"]}},
    ]
    made = await api.post("/api/v1/permissions/sets", json={"ref": "demo.watch", "grants": grants})
    assert made.status_code == 201, made.text
    watcher = await _token(platform, "wanda", password_hash, "demo.watch")
    viewer = await _token(platform, "vic", password_hash, "core.viewer")
    async with await connect(served, watcher) as limited, await connect(served, viewer) as reader:
        for client in (limited, reader):
            await subscribe(client, "all")
        await publish(platform, "execution_created", "execution", 1, action_ref="demo.a", status="requested")
        await publish(platform, "execution_created", "execution", 2, action_ref="other.b", status="requested")
        await publish(platform, "event_created", "event", 3)
        await publish(platform, "inquiry_created", "inquiry", 4, execution=2)
        assert [m["entity_id"] for m in await received(limited)] == [1, 3]
        assert [m["entity_id"] for m in await received(reader)] == [1, 2, 3, 4]
