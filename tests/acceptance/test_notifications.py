"""Real-time notifications against real processes.

The SQLite pass runs the embedded server (WebSocket on the API port, memory bus); the PostgreSQL
pass runs the scaled deployment (RabbitMQ carries the notifications from the executor and the
worker to the API process), plus ``attune notifier`` on its own port.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from attune.testing.deployment import Deployment, free_port
from attune.testing.wsclient import ConnectionClosed, WebSocketClient, WebSocketRefused
from tests.acceptance.harness import running_deployment
from tests.conftest import BACKEND

WS_PATH = "/api/v1/notifications/ws"
LATENCY_BUDGET = 0.2
STATUSES = ["requested", "scheduled", "running", "completed"]


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    notifier_port = free_port()
    with running_deployment(
        tmp_path_factory.mktemp("notifications"),
        extra_env={"ATTUNE__NOTIFIER__HOST": "127.0.0.1", "ATTUNE__NOTIFIER__PORT": str(notifier_port)},
    ) as deployment:
        deployment.post("/api/v1/packs", {"ref": "ntf", "label": "Notifications", "version": "1.0.0"})
        yield deployment


def _action(d: Deployment, entrypoint: str, **extra: Any) -> str:
    ref = f"ntf.act_{uuid.uuid4().hex[:8]}"
    d.post(
        "/api/v1/actions",
        {
            "ref": ref,
            "pack_ref": "ntf",
            "label": ref,
            "runtime_ref": "core.shell",
            "entrypoint": entrypoint,
            **extra,
        },
    )
    return ref


def _run(d: Deployment, action_ref: str) -> int:
    return int(d.post("/api/v1/executions/execute", {"action_ref": action_ref, "parameters": {}})["id"])


def _ws_url(d: Deployment, query: str = "") -> str:
    return f"ws://127.0.0.1:{d.port}{WS_PATH}{query}"


def _time(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


class Recorder:
    """Reads a subscribed client in the background, stamping each frame on arrival."""

    def __init__(self, client: WebSocketClient) -> None:
        self.client = client
        self.frames: list[tuple[float, str]] = []
        self._arrived = asyncio.Event()
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            try:
                text = await self.client.recv(timeout=None)
            except ConnectionClosed:
                return
            self.frames.append((time.time(), text if isinstance(text, str) else text.decode()))
            self._arrived.set()

    def of(self, execution_id: int) -> list[tuple[float, str, dict[str, Any]]]:
        found = []
        for arrived, text in self.frames:
            message = json.loads(text)
            if message.get("entity_type") == "execution" and message.get("entity_id") == execution_id:
                found.append((arrived, text, message))
        return found

    async def wait_status(self, execution_id: int, status: str, timeout: float = 30) -> None:  # noqa: ASYNC109
        async with asyncio.timeout(timeout):
            while not any(m["payload"].get("status") == status for _, _, m in self.of(execution_id)):
                self._arrived.clear()
                await self._arrived.wait()

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def _subscribed(url: str, filter_: str) -> WebSocketClient:
    client = await WebSocketClient.connect(url)
    assert (await client.recv_json())["type"] == "welcome"
    await client.send_json({"type": "subscribe", "filter": filter_})
    assert (await client.recv_json())["type"] == "subscribed"
    return client


def _change_times(d: Deployment, execution_id: int) -> dict[str, float]:
    """When each status was written, from the execution's history (empty if there is none)."""
    response = d.request("GET", f"/api/v1/executions/{execution_id}/history", params={"per_page": 100})
    if response.status_code != 200:
        return {}
    times: dict[str, float] = {}
    for row in response.json()["data"]:
        status = (row.get("new_values") or {}).get("status")
        if isinstance(status, str):
            times.setdefault(status, _time(row["time"]))
    return times


def _status_changes(frames: list[tuple[float, str, dict[str, Any]]]) -> list[tuple[float, dict[str, Any]]]:
    return [
        (arrived, m)
        for arrived, _, m in frames
        if m["notification_type"] in ("execution_created", "execution_status_changed")
    ]


async def test_statuses_arrive_in_order_within_200ms(deployment: Deployment) -> None:
    action = await asyncio.to_thread(_action, deployment, "echo hello")
    client = await _subscribed(_ws_url(deployment, f"?token={deployment.token}"), "entity_type:execution")
    recorder = Recorder(client)
    try:
        execution_id = await asyncio.to_thread(_run, deployment, action)
        await recorder.wait_status(execution_id, "completed")
        await asyncio.sleep(0.2)  # nothing may follow out of order
    finally:
        await recorder.stop()
        await client.close()
    changes = _status_changes(recorder.of(execution_id))
    assert [m["payload"]["status"] for _, m in changes] == STATUSES
    history = await asyncio.to_thread(_change_times, deployment, execution_id)
    for arrived, message in changes:
        status = message["payload"]["status"]
        # The change is the status write: the notification is stamped when the UPDATE is flushed,
        # the history row (PostgreSQL now()) when its transaction began; the later one is closer.
        changed = max(history.get(status, 0.0), _time(message["timestamp"]))
        latency = arrived - changed
        assert latency < LATENCY_BUDGET, f"{status} arrived {latency * 1000:.0f} ms after the change"


async def test_the_websocket_is_refused_without_a_token(deployment: Deployment) -> None:
    for query in ("?token=forged", f"?token={deployment.token}x"):
        with pytest.raises(WebSocketRefused) as refused:
            await WebSocketClient.connect(_ws_url(deployment, query))
        assert refused.value.status == 403
    async with await WebSocketClient.connect(_ws_url(deployment)) as client:
        await client.send_json({"type": "subscribe", "filter": "all"})
        with pytest.raises(ConnectionClosed) as closed:
            await client.recv()
        assert closed.value.code == 4401


async def test_a_5mb_result_completes_and_its_notifications_stay_small(deployment: Deployment) -> None:
    script = "printf '{\"blob\": \"'; head -c 5000000 /dev/zero | tr '\\0' x; printf '\"}\\n'"
    action = await asyncio.to_thread(_action, deployment, script, output_format="json")
    client = await _subscribed(_ws_url(deployment, f"?token={deployment.token}"), "entity_type:execution")
    recorder = Recorder(client)
    try:
        execution_id = await asyncio.to_thread(_run, deployment, action)
        await recorder.wait_status(execution_id, "completed", timeout=60)
    finally:
        await recorder.stop()
        await client.close()
    execution = await asyncio.to_thread(deployment.get, f"/api/v1/executions/{execution_id}")
    assert execution["status"] == "completed"
    assert len(execution["result"]["data"]["blob"]) == 5_000_000
    frames = recorder.of(execution_id)
    assert frames
    assert all(len(text.encode()) < 4096 for _, text, _ in frames)


@pytest.mark.skipif(BACKEND != "postgres", reason="the standalone notifier needs a shared bus (scaled)")
async def test_standalone_notifier_serves_the_feed(deployment: Deployment) -> None:
    port = int(deployment.extra_env["ATTUNE__NOTIFIER__PORT"])
    if "notifier" not in deployment.processes:
        deployment.spawn("notifier", "notifier")
    url = f"ws://127.0.0.1:{port}/ws?token={deployment.token}"
    client: WebSocketClient | None = None
    deadline = time.monotonic() + 20
    while client is None:
        try:
            client = await _subscribed(url, "entity_type:execution")
        except OSError:
            assert time.monotonic() < deadline, deployment.log_text()
            await asyncio.sleep(0.1)
    action = await asyncio.to_thread(_action, deployment, "echo standalone")
    recorder = Recorder(client)
    try:
        execution_id = await asyncio.to_thread(_run, deployment, action)
        await recorder.wait_status(execution_id, "completed")
    finally:
        await recorder.stop()
        await client.close()
    assert [m["payload"]["status"] for _, m in _status_changes(recorder.of(execution_id))] == STATUSES
    with pytest.raises(WebSocketRefused):
        await WebSocketClient.connect(f"ws://127.0.0.1:{port}/ws?token=forged")
