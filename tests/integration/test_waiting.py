"""Waiting instead of polling (docs/api.md, "Waiting for a run"; docs/webhooks.md).

The pipeline's part (rule → enforcement → execution → status changes) is played by writing the
rows as the executor and worker do, so each test decides exactly when a run ends; the change
notifications they cause reach the API's feed as in a deployment.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from attune.api import waiting
from attune.db import models
from attune.db.repos import triggers as trigger_repo
from attune.platform import Platform


@pytest.fixture(autouse=True)
def notifications_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """No safety poll within a test's time: an answer before the timeout came from a notification."""
    monkeypatch.setattr(waiting, "SAFETY_POLL", 600.0)


@pytest.fixture
async def setup(platform: Platform) -> dict[str, Any]:
    async with platform.db.transaction() as session:
        pack = models.Pack(ref="demo", label="Demo", version="1.0.0")
        session.add(pack)
        await session.flush()
        trigger = models.Trigger(ref="demo.hook", pack=pack.id, pack_ref="demo", label="Hook", enabled=True)
        action = models.Action(
            ref="demo.act", pack=pack.id, pack_ref="demo", label="act", description="", entrypoint="x"
        )
        session.add_all([trigger, action])
        await session.flush()
        rule = models.Rule(
            ref="demo.rule",
            pack=pack.id,
            pack_ref="demo",
            label="rule",
            description="",
            action=action.id,
            action_ref="demo.act",
            trigger=trigger.id,
            trigger_ref="demo.hook",
            enabled=True,
        )
        session.add(rule)
        await session.flush()
        return {"rule": rule.id, "action": action.id}


async def set_status(platform: Platform, execution_id: int, status: str, **values: Any) -> None:
    async with platform.db.transaction() as session:
        await session.execute(
            sa.update(models.Execution)
            .where(models.Execution.id == execution_id)
            .values(status=status, **values)
        )


async def started(api: httpx.AsyncClient) -> int:
    response = await api.post("/api/v1/executions/execute", json={"action_ref": "demo.act"})
    assert response.status_code == 201, response.text
    execution_id: int = response.json()["data"]["id"]
    return execution_id


async def test_execution_wait_returns_at_completion(
    api: httpx.AsyncClient, platform: Platform, setup: dict[str, Any]
) -> None:
    execution_id = await started(api)
    begun = time.monotonic()
    request = asyncio.create_task(api.get(f"/api/v1/executions/{execution_id}?wait=30"))
    await asyncio.sleep(0.3)
    assert not request.done(), "answered before the execution ended"
    await set_status(platform, execution_id, "running")
    await asyncio.sleep(0.2)
    assert not request.done(), "a non-terminal status ended the wait"
    await set_status(platform, execution_id, "completed", result={"stdout": "hello"})
    response = await asyncio.wait_for(request, 25)
    assert time.monotonic() - begun < 25
    assert response.status_code == 200
    body = response.json()["data"]
    assert body["status"] == "completed" and body["result"] == {"stdout": "hello"}


async def test_execution_wait_timeout_returns_current_state(
    api: httpx.AsyncClient, platform: Platform, setup: dict[str, Any]
) -> None:
    execution_id = await started(api)
    await set_status(platform, execution_id, "running")
    begun = time.monotonic()
    response = await api.get(f"/api/v1/executions/{execution_id}?wait=1")
    assert time.monotonic() - begun >= 0.9
    assert response.status_code == 200
    assert response.json()["data"]["status"] == "running"
    # Without wait the answer is immediate and the same shape.
    plain = await api.get(f"/api/v1/executions/{execution_id}")
    assert plain.json()["data"].keys() == response.json()["data"].keys()


async def test_execution_wait_is_clamped(
    api: httpx.AsyncClient, platform: Platform, setup: dict[str, Any]
) -> None:
    platform.settings.server.max_wait_seconds = 1
    execution_id = await started(api)
    begun = time.monotonic()
    response = await api.get(f"/api/v1/executions/{execution_id}?wait=3600")
    assert response.status_code == 200
    assert time.monotonic() - begun < 30


async def test_execution_wait_keeps_the_permission_check(
    client: httpx.AsyncClient, api: httpx.AsyncClient, setup: dict[str, Any]
) -> None:
    execution_id = await started(api)
    response = await client.get(f"/api/v1/executions/{execution_id}?wait=5")
    assert response.status_code == 401


async def enable(api: httpx.AsyncClient) -> str:
    response = await api.post("/api/v1/triggers/demo.hook/webhooks/enable")
    assert response.status_code == 200, response.text
    key: str = response.json()["data"]["webhook_key"]
    return key


async def play_pipeline(platform: Platform, setup: dict[str, Any], result: Any) -> int:
    """Wait for the webhook's event, then enforce it and run the execution to completion."""
    for _ in range(500):
        async with platform.db.session() as session:
            event_id = await session.scalar(sa.select(sa.func.max(models.Event.id)))
        if event_id is not None:
            break
        await asyncio.sleep(0.02)
    assert event_id is not None
    async with platform.db.transaction() as session:
        enforcement = models.Enforcement(
            rule=setup["rule"], rule_ref="demo.rule", trigger_ref="demo.hook", event=event_id, payload={}
        )
        session.add(enforcement)
        await session.flush()
        execution = models.Execution(
            action=setup["action"], action_ref="demo.act", enforcement=enforcement.id, status="requested"
        )
        session.add(execution)
        await session.flush()
        execution_id = execution.id
    await asyncio.sleep(0.2)
    await set_status(platform, execution_id, "running")
    await set_status(platform, execution_id, "completed", result=result)
    return execution_id


async def test_webhook_wait_answers_with_the_result(
    api: httpx.AsyncClient, client: httpx.AsyncClient, platform: Platform, setup: dict[str, Any]
) -> None:
    key = await enable(api)
    begun = time.monotonic()
    request = asyncio.create_task(client.post(f"/api/v1/webhooks/{key}?wait=30", json={"payload": {}}))
    execution_id = await play_pipeline(platform, setup, {"stdout": "hello\n"})
    response = await asyncio.wait_for(request, 28)
    assert time.monotonic() - begun < 28
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["completed"] is True
    [execution] = data["executions"]
    assert {k: execution[k] for k in ("id", "action_ref", "status", "result")} == {
        "id": execution_id,
        "action_ref": "demo.act",
        "status": "completed",
        "result": {"stdout": "hello\n"},
    }
    assert execution["updated"] >= execution["created"]
    assert isinstance(data["event_id"], int)


async def test_webhook_without_wait_answers_as_before(
    api: httpx.AsyncClient, client: httpx.AsyncClient, setup: dict[str, Any]
) -> None:
    key = await enable(api)
    response = await client.post(f"/api/v1/webhooks/{key}", json={"payload": {}})
    assert response.status_code == 200
    assert set(response.json()["data"]) == {"event_id", "trigger_ref", "received_at", "message"}


async def test_webhook_wait_timeout_reports_unfinished_runs(
    api: httpx.AsyncClient, client: httpx.AsyncClient, setup: dict[str, Any]
) -> None:
    key = await enable(api)
    response = await client.post(f"/api/v1/webhooks/{key}?wait=0.5", json={"payload": {}})
    assert response.status_code == 200
    assert response.json()["data"]["completed"] is False
    assert response.json()["data"]["executions"] == []


async def test_waiter_bound_answers_429(
    api: httpx.AsyncClient, client: httpx.AsyncClient, platform: Platform, setup: dict[str, Any]
) -> None:
    platform.settings.server.max_waiters = 1
    key = await enable(api)
    execution_id = await started(api)
    holder = asyncio.create_task(api.get(f"/api/v1/executions/{execution_id}?wait=30"))
    for _ in range(500):
        await asyncio.sleep(0.02)
        events_before = await api.get("/api/v1/events")
        if holder.done():
            break
        refused = await client.post(f"/api/v1/webhooks/{key}?wait=5", json={"payload": {}})
        if refused.status_code == 429:
            break
    assert refused.status_code == 429, refused.text
    assert refused.headers["Retry-After"] == "1"
    # The refused request recorded no event, so it started nothing.
    assert (await api.get("/api/v1/events")).json() == events_before.json()
    also = await api.get(f"/api/v1/executions/{execution_id}?wait=5")
    assert also.status_code == 429
    # Not waiting is never refused.
    assert (await api.get(f"/api/v1/executions/{execution_id}")).status_code == 200
    assert (await client.post(f"/api/v1/webhooks/{key}", json={"payload": {}})).status_code == 200
    await set_status(platform, execution_id, "completed")
    assert (await asyncio.wait_for(holder, 25)).status_code == 200
    # The slot is free again.
    assert (await api.get(f"/api/v1/executions/{execution_id}?wait=5")).status_code == 200


async def test_webhook_wait_without_an_enabled_rule_answers_at_once(
    api: httpx.AsyncClient, client: httpx.AsyncClient, platform: Platform, setup: dict[str, Any]
) -> None:
    key = await enable(api)
    async with platform.db.transaction() as session:
        await session.execute(sa.update(models.Rule).values(enabled=False))
    begun = time.monotonic()
    response = await client.post(f"/api/v1/webhooks/{key}?wait=30", json={"payload": {}})
    assert time.monotonic() - begun < 10  # nothing will run: no reason to wait
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert (data["completed"], data["executions"]) == (True, [])


async def test_a_trigger_deleted_while_its_webhook_arrives_answers_404(
    api: httpx.AsyncClient,
    client: httpx.AsyncClient,
    platform: Platform,
    setup: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = await enable(api)
    read = trigger_repo.by_webhook_key

    async def read_then_deleted(session: AsyncSession, webhook_key: str) -> models.Trigger | None:
        trigger = await read(session, webhook_key)
        async with platform.db.transaction() as other:
            await other.execute(sa.delete(models.Trigger))
        return trigger

    monkeypatch.setattr(trigger_repo, "by_webhook_key", read_then_deleted)
    response = await client.post(f"/api/v1/webhooks/{key}", json={"payload": {}})
    assert response.status_code == 404, response.text
    assert response.json()["error"] == "Invalid webhook key"
    async with platform.db.session() as session:
        assert await session.scalar(sa.select(sa.func.count()).select_from(models.Event)) == 0


async def test_a_waiting_webhook_reads_its_trigger_once_and_its_runs_once(
    api: httpx.AsyncClient, client: httpx.AsyncClient, platform: Platform, setup: dict[str, Any]
) -> None:
    """The runs are followed through their notifications: the database is read for the answer only
    (a guard against reading on every notification; docs/performance.md)."""
    key = await enable(api)
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(" ".join(statement.split()))

    engine = platform.db.engine.sync_engine
    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        request = asyncio.create_task(client.post(f"/api/v1/webhooks/{key}?wait=30", json={"payload": {}}))
        await play_pipeline(platform, setup, {"stdout": "hello\n"})
        response = await asyncio.wait_for(request, 28)
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    assert response.json()["data"]["completed"] is True
    trigger_reads = [s for s in statements if s.startswith("SELECT") and re.search(r'FROM "?trigger"? ', s)]
    run_reads = [s for s in statements if s.startswith("SELECT") and "JOIN enforcement ON" in s]
    assert (len(trigger_reads), len(run_reads)) == (1, 1), trigger_reads + run_reads
