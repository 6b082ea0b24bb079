"""In-process workflow children announce every change as a child run one by one would, but in
``ChangeNotifications`` messages of many notifications each (docs/notifications.md)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from attune.db import models
from attune.db.repos import children as children_repo
from attune.messaging.messages import MessageType
from attune.notifier.hub import Notification, NotificationHub
from attune.packs.register import register_system_packs
from attune.platform import Platform
from attune.testing.clock import FakeClock
from attune.workflow.engine import TIMERS_KEY
from tests.integration.test_workflow_routes import children, start_run

ITEMS = 7


async def _many(api: httpx.AsyncClient, platform: Platform) -> None:
    await register_system_packs(platform)
    response = await api.post("/api/v1/packs", json={"ref": "wf", "label": "Workflows", "version": "1.0.0"})
    assert response.status_code == 201, response.text
    body = {
        "ref": "wf.many",
        "pack_ref": "wf",
        "label": "Many",
        "version": "1.0.0",
        "definition": {
            "tasks": [
                {"name": "each", "action": "core.noop", "with_items": f"{{{{ range({ITEMS}) | list }}}}"}
            ]
        },
    }
    assert (await api.post("/api/v1/workflows", json=body)).status_code == 201


async def _until_terminal(platform: Platform, execution_id: int) -> str:
    deadline = asyncio.get_running_loop().time() + 30
    while asyncio.get_running_loop().time() < deadline:
        async with platform.db.session() as session:
            row = await session.get(models.Execution, execution_id)
            if row is not None and row.status not in ("requested", "scheduled", "running"):
                return row.status
        await asyncio.sleep(0.05)
    raise AssertionError(f"execution {execution_id} still running")


async def test_every_in_process_child_is_announced_created_then_finished(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    await _many(api, platform)
    hub = NotificationHub(platform.bus)
    seen = hub.subscribe()
    await hub.start()
    try:
        _, run = await start_run(platform, "wf.many")
        assert await _until_terminal(platform, run) == "completed"
        kids = {kid.id for kid in await children(platform, run)}
        assert len(kids) == ITEMS
        got: dict[int, list[tuple[str, object]]] = {}
        while any(len(got.get(kid, [])) < 2 for kid in kids):
            item: Notification | None = await seen.get(timeout=5)
            assert item is not None, got
            if item.entity_id in kids:
                got.setdefault(item.entity_id, []).append(
                    (item.notification_type, item.data["payload"].get("status"))
                )
    finally:
        await hub.close()
    assert got == {
        kid: [("execution_created", "requested"), ("execution_status_changed", "completed")] for kid in kids
    }


async def test_in_process_children_share_their_notification_messages(
    api: httpx.AsyncClient, platform: Platform, held_outbox: None
) -> None:
    await _many(api, platform)
    _, run = await start_run(platform, "wf.many")
    async with platform.db.session() as session:
        rows = (
            await session.execute(
                sa.select(models.OutboxMessage.message_type, models.OutboxMessage.body).order_by(
                    models.OutboxMessage.id
                )
            )
        ).all()
    kids = {kid.id for kid in await children(platform, run)}
    assert len(kids) == ITEMS
    batches = [
        body["payload"]["notifications"] for kind, body in rows if kind == MessageType.CHANGE_NOTIFICATIONS
    ]
    announced = [n["entity_id"] for batch in batches for n in batch if n["entity_id"] in kids]
    # Two notifications per child (created, finished) in one message, not one message each.
    assert sorted(announced) == sorted([*kids, *kids]) and len(batches) == 1
    single = [body["payload"]["entity_id"] for kind, body in rows if kind == MessageType.CHANGE_NOTIFICATION]
    assert not kids & set(single)
    assert children_repo.NOTIFICATIONS_PER_MESSAGE >= 2 * ITEMS


async def test_deferred_children_the_engine_ran_stage_no_completion_messages(
    api: httpx.AsyncClient, platform: Platform, held_outbox: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the in-process budget, items run in a later transaction of the engine; like the ones
    run at once they stage no ExecutionRequested/ExecutionStatusChanged/ExecutionCompleted, only
    their notifications."""
    from attune.workflow.engine import inline

    monkeypatch.setattr(inline, "BUDGET", 3)
    await _many(api, platform)
    _, run = await start_run(platform, "wf.many")
    assert await _until_terminal(platform, run) == "completed"
    kids = {kid.id for kid in await children(platform, run)}
    assert len(kids) == ITEMS
    async with platform.db.session() as session:
        rows = (
            await session.execute(sa.select(models.OutboxMessage.message_type, models.OutboxMessage.body))
        ).all()
    about_kids = [
        kind
        for kind, body in rows
        if kind != MessageType.CHANGE_NOTIFICATIONS and body["payload"].get("execution_id") in kids
    ]
    assert about_kids == []
    announced = [
        n["entity_id"]
        for kind, body in rows
        if kind == MessageType.CHANGE_NOTIFICATIONS
        for n in body["payload"]["notifications"]
    ]
    assert sorted(n for n in announced if n in kids) == sorted([*kids, *kids])


@pytest.mark.parametrize("ran_steps", [0, 1])
async def test_items_held_back_by_a_stop_are_run_once_by_the_deferred_timer(
    api: httpx.AsyncClient,
    platform: Platform,
    fake_clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    ran_steps: int,
) -> None:
    """The process stops after the step that held items back committed (before the engine's
    next transaction, or between two): a restarted engine's timer loop finds the run's deferred
    timer due and continues the run, each item run and counted exactly once."""
    from attune.workflow.engine import WorkflowEngine, inline
    from attune.workflow.engine import service as engine_service

    monkeypatch.setattr(inline, "BUDGET", 3)
    original = engine_service.continue_run
    calls: list[int] = []

    async def stopping(session: Any, state_id: int, ctx: Any) -> bool:
        calls.append(state_id)
        if len(calls) > ran_steps:
            raise asyncio.CancelledError  # the process stops: the task ends, nothing is rolled forward
        return await original(session, state_id, ctx)

    monkeypatch.setattr(engine_service, "continue_run", stopping)
    await _many(api, platform)
    engine, run = await start_run(platform, "wf.many")
    for _ in range(100):
        if not engine._drains:
            break
        await asyncio.sleep(0.01)
    kids = await children(platform, run)
    assert [kid.status for kid in kids] == ["completed"] * (3 + 3 * ran_steps)
    monkeypatch.setattr(engine_service, "continue_run", original)

    restarted = WorkflowEngine(platform)
    assert await restarted.sweep_timers() == 0  # not due yet: the first engine may still be at it
    fake_clock.advance(inline.DEFERRED_GRACE + 1)
    assert await restarted.sweep_timers() == 1
    assert await _until_terminal(platform, run) == "completed"
    kids = await children(platform, run)
    assert [(kid.status, kid.workflow_task["counted"]) for kid in kids] == [("completed", True)] * ITEMS
    assert sorted(kid.workflow_task["task_index"] for kid in kids) == list(range(ITEMS))
    async with platform.db.session() as session:
        state = await session.scalar(
            sa.select(models.WorkflowExecution).where(models.WorkflowExecution.execution == run)
        )
    assert state is not None and state.variables[TIMERS_KEY] == []  # the deferred timer went with them
    assert await restarted.sweep_timers() == 0
