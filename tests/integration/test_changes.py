"""Change history (docs/operations.md) and change notifications written by application code.

Every write through a runtime's database records ``execution_history``/``worker_history`` rows and
stages ``ChangeNotification`` outbox messages in the same transaction, for ORM flushes and for
ORM-enabled bulk UPDATE/DELETE statements alike.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from attune.db import models
from attune.db.history import digest
from attune.db.types import utcnow
from attune.messaging.messages import Envelope, MessageType
from attune.messaging.topology import NOTIFICATIONS_EXCHANGE, QueueSpec
from attune.platform import Platform

CHANGE = str(MessageType.CHANGE_NOTIFICATION)


async def add(platform: Platform, row: Any) -> Any:
    async with platform.db.transaction() as session:
        session.add(row)
    return row


def execution(**values: Any) -> models.Execution:
    return models.Execution(**{"action_ref": "core.echo", "action": 1, "executor": 1, **values})


def worker(name: str = "worker-a", **values: Any) -> models.Worker:
    return models.Worker(
        **{"name": name, "worker_type": "local", "worker_role": "action", "host": "h1", **values}
    )


async def history(
    platform: Platform, model: Any = models.ExecutionHistory, entity_id: int | None = None
) -> list[Any]:
    async with platform.db.session() as session:
        query = sa.select(model).order_by(model.id)
        if entity_id is not None:
            query = query.where(model.entity_id == entity_id)
        return list((await session.execute(query)).scalars())


async def staged(platform: Platform) -> list[models.OutboxMessage]:
    async with platform.db.session() as session:
        query = (
            sa.select(models.OutboxMessage)
            .where(models.OutboxMessage.message_type == CHANGE)
            .order_by(models.OutboxMessage.id)
        )
        return list((await session.execute(query)).scalars())


async def set_fields(platform: Platform, model: Any, entity_id: int, **values: Any) -> None:
    async with platform.db.transaction() as session:
        row = await session.get(model, entity_id)
        for key, value in values.items():
            setattr(row, key, value)


# --------------------------------------------------------------------------- history: ORM flushes


async def test_inserting_an_execution_records_one_insert_row(platform: Platform) -> None:
    row = await add(platform, execution(parent=40, enforcement=41))

    (record,) = await history(platform)
    assert (record.operation, record.entity_id, record.entity_ref) == ("INSERT", row.id, "core.echo")
    assert record.changed_fields == []
    assert record.old_values is None
    assert record.new_values == {
        "status": "requested",
        "action_ref": "core.echo",
        "executor": 1,
        "parent": 40,
        "enforcement": 41,
    }
    async with platform.db.session() as session:
        # Stored as SQL NULL, not as a JSON null document.
        query = sa.select(sa.func.count()).where(models.ExecutionHistory.__table__.c.old_values.is_(None))
        assert (await session.execute(query)).scalar_one() == 1


async def test_status_and_result_update_records_changed_fields_with_a_digest(platform: Platform) -> None:
    row = await add(platform, execution(status="running"))
    result = {"stdout": "done", "exit_code": 0}

    await set_fields(platform, models.Execution, row.id, status="completed", result=result, config={"x": 1})

    update = (await history(platform))[-1]
    assert update.operation == "UPDATE"
    assert update.changed_fields == ["status", "result"]
    assert update.old_values == {"status": "running", "result": None}
    assert update.new_values == {"status": "completed", "result": digest(result)}
    assert update.new_values["result"]["digest"].startswith("md5:")


async def test_untracked_or_unchanged_updates_record_nothing(platform: Platform) -> None:
    row = await add(platform, execution())

    await set_fields(
        platform, models.Execution, row.id, config={"changed": True}, retry_reason="manual_retry"
    )
    await set_fields(platform, models.Execution, row.id, status="requested")

    assert [r.operation for r in await history(platform)] == ["INSERT"]


async def test_old_values_are_right_when_the_attribute_was_not_loaded(platform: Platform) -> None:
    row = await add(platform, execution(status="scheduled"))

    async with platform.db.transaction() as session:
        loaded = await session.get(models.Execution, row.id)
        assert loaded is not None
        session.expire(loaded, ["status"])
        loaded.status = "running"

    update = (await history(platform))[-1]
    assert (update.old_values, update.new_values) == ({"status": "scheduled"}, {"status": "running"})


async def test_history_rolls_back_with_the_write(platform: Platform) -> None:
    with pytest.raises(RuntimeError):
        async with platform.db.transaction() as session:
            session.add(execution())
            await session.flush()
            raise RuntimeError("abort")

    assert await history(platform) == []


async def test_worker_heartbeats_record_nothing_but_status_changes_do(platform: Platform) -> None:
    row = await add(platform, worker())

    await set_fields(platform, models.Worker, row.id, last_heartbeat=utcnow())
    async with platform.db.transaction() as session:
        await session.execute(
            sa.update(models.Worker).where(models.Worker.id == row.id).values(last_heartbeat=utcnow())
        )
    await set_fields(platform, models.Worker, row.id, status="inactive", meta={"reason": "drained"})

    records = await history(platform, models.WorkerHistory)
    assert [r.operation for r in records] == ["INSERT", "UPDATE"]
    assert records[0].new_values == {
        "name": "worker-a",
        "worker_type": "local",
        "worker_role": "action",
        "status": "active",
        "host": "h1",
        "port": None,
    }
    assert records[1].entity_ref == "worker-a"
    assert records[1].changed_fields == ["status", "meta"]
    assert records[1].old_values == {"status": "active", "meta": None}
    assert records[1].new_values == {"status": "inactive", "meta": {"reason": "drained"}}


async def test_deletes_record_a_row_without_values(platform: Platform) -> None:
    exe = await add(platform, execution())
    first, second = await add(platform, worker("worker-a")), await add(platform, worker("worker-b"))

    async with platform.db.transaction() as session:
        await session.delete(await session.get(models.Execution, exe.id))
    async with platform.db.transaction() as session:
        await session.execute(sa.delete(models.Worker).where(models.Worker.id == first.id))

    deleted = (await history(platform))[-1]
    assert (deleted.operation, deleted.entity_id, deleted.entity_ref) == ("DELETE", exe.id, "core.echo")
    assert (deleted.changed_fields, deleted.old_values, deleted.new_values) == ([], None, None)
    workers = await history(platform, models.WorkerHistory)
    assert [(r.operation, r.entity_ref) for r in workers if r.operation == "DELETE"] == [
        ("DELETE", "worker-a")
    ]
    assert not [r for r in workers if r.entity_id == second.id and r.operation == "DELETE"]


# --------------------------------------------------------------------------- history: bulk statements


async def test_bulk_status_update_records_a_row_per_affected_execution(platform: Platform) -> None:
    rows = [await add(platform, execution(status="scheduled")) for _ in range(3)]
    targets = [rows[0].id, rows[1].id]

    async with platform.db.transaction() as session:
        result = await session.execute(
            sa.update(models.Execution)
            .where(models.Execution.id.in_(targets), models.Execution.status == "scheduled")
            .values(status="abandoned", updated=utcnow())
        )
        assert result.rowcount == 2  # type: ignore[attr-defined]

    updates = [r for r in await history(platform) if r.operation == "UPDATE"]
    assert sorted(r.entity_id for r in updates) == targets
    for record in updates:
        assert record.changed_fields == ["status"]
        assert (record.old_values, record.new_values) == ({"status": "scheduled"}, {"status": "abandoned"})
        assert record.entity_ref == "core.echo"


async def test_bulk_update_of_result_records_digests(platform: Platform) -> None:
    row = await add(platform, execution(status="running", result={"old": 1}))

    async with platform.db.transaction() as session:
        await session.execute(
            sa.update(models.Execution)
            .where(models.Execution.id == row.id)
            .values(status="failed", result={"error": "boom"})
        )

    update = (await history(platform))[-1]
    assert update.changed_fields == ["status", "result"]
    assert update.old_values == {"status": "running", "result": digest({"old": 1})}
    assert update.new_values == {"status": "failed", "result": digest({"error": "boom"})}


async def test_bulk_update_by_primary_key_is_recorded(platform: Platform) -> None:
    first, second = await add(platform, worker("worker-a")), await add(platform, worker("worker-b"))

    async with platform.db.transaction() as session:
        await session.execute(
            sa.update(models.Worker),
            [{"id": first.id, "status": "busy"}, {"id": second.id, "status": "active"}],
        )

    updates = [r for r in await history(platform, models.WorkerHistory) if r.operation == "UPDATE"]
    assert [(r.entity_id, r.changed_fields, r.new_values) for r in updates] == [
        (first.id, ["status"], {"status": "busy"})
    ]


# --------------------------------------------------------------------------- notifications


def bodies(messages: list[models.OutboxMessage], channel: str) -> list[dict[str, Any]]:
    return [m.body["payload"] for m in messages if m.routing_key == channel]


@pytest.mark.usefixtures("held_outbox")
async def test_execution_lifecycle_notifications_are_staged_without_result(platform: Platform) -> None:
    enforcement = await add(
        platform, models.Enforcement(rule_ref="p.on_tick", trigger_ref="core.intervaltimer", event=None)
    )
    exe = await add(platform, execution(enforcement=enforcement.id, is_workflow=True, workflow_def=5))
    await set_fields(platform, models.Execution, exe.id, status="running", result={"big": "x" * 9000})
    async with platform.db.transaction() as session:
        await session.execute(
            sa.update(models.Execution).where(models.Execution.id == exe.id).values(status="completed")
        )

    messages = await staged(platform)
    assert {m.exchange for m in messages} == {NOTIFICATIONS_EXCHANGE}
    assert all(m.routing_key == m.body["payload"]["notification_type"] for m in messages)
    assert all("result" not in m.body["payload"]["payload"] for m in messages)

    (created,) = bodies(messages, "execution_created")
    assert (created["entity_type"], created["entity_id"]) == ("execution", exe.id)
    fields = created["payload"]
    assert fields["entity_type"] == "execution" and fields["id"] == exe.id
    assert (fields["action_ref"], fields["status"], fields["action_id"]) == ("core.echo", "requested", 1)
    assert (fields["rule_ref"], fields["trigger_ref"]) == ("p.on_tick", "core.intervaltimer")
    assert fields["enforcement"] == enforcement.id and fields["created"].endswith("Z")

    changed = bodies(messages, "execution_status_changed")
    assert [(c["payload"]["old_status"], c["payload"]["status"]) for c in changed] == [
        ("requested", "running"),
        ("running", "completed"),
    ]
    assert all(c["payload"]["rule_ref"] == "p.on_tick" for c in changed)
    workflow = bodies(messages, "workflow_execution_status_changed")
    assert [w["payload"]["workflow_def"] for w in workflow] == [5, 5]
    Envelope.model_validate(messages[-1].body)


@pytest.mark.usefixtures("held_outbox")
async def test_event_enforcement_inquiry_and_notification_rows_notify(platform: Platform) -> None:
    event = await add(platform, models.Event(trigger_ref="core.webhook", payload={"a": 1}))
    enforcement = await add(
        platform, models.Enforcement(rule_ref="p.rule", trigger_ref="core.webhook", event=event.id)
    )
    await set_fields(platform, models.Enforcement, enforcement.id, status="processed", resolved_at=utcnow())
    inquiry = await add(platform, models.Inquiry(execution=3, prompt="Approve?"))
    await set_fields(platform, models.Inquiry, inquiry.id, status="responded", response={"approved": True})
    await add(
        platform,
        models.Notification(
            channel="attune_notifications", entity_type="pack", entity="core", activity="created"
        ),
    )

    messages = await staged(platform)
    assert [m.routing_key for m in messages] == [
        "event_created",
        "enforcement_created",
        "enforcement_status_changed",
        "inquiry_created",
        "inquiry_responded",
        "attune_notifications",
    ]
    (event_body,) = bodies(messages, "event_created")
    assert event_body["payload"]["trigger_ref"] == "core.webhook"
    assert event_body["payload"]["payload"] == {"a": 1}
    (status_body,) = bodies(messages, "enforcement_status_changed")
    status_fields = status_body["payload"]
    assert (status_fields["old_status"], status_fields["status"]) == ("created", "processed")
    assert status_fields["event"] == event.id
    (asked,) = bodies(messages, "inquiry_created")
    assert asked["payload"] == {
        "entity_type": "inquiry",
        "entity_id": inquiry.id,
        "id": inquiry.id,
        "execution": 3,
        "status": "pending",
        "created": asked["payload"]["created"],
    }
    (answered,) = bodies(messages, "inquiry_responded")
    assert answered["payload"]["response"] == {"approved": True}
    (generic,) = bodies(messages, "attune_notifications")
    assert (generic["entity_type"], generic["entity_id"]) == ("pack", None)
    assert generic["payload"]["entity"] == "core" and generic["payload"]["activity"] == "created"


@pytest.mark.usefixtures("held_outbox")
async def test_rolled_back_writes_stage_no_notification(platform: Platform) -> None:
    with pytest.raises(RuntimeError):
        async with platform.db.transaction() as session:
            session.add(execution())
            await session.flush()
            raise RuntimeError("abort")

    assert await staged(platform) == []


async def test_notifications_reach_the_bus_after_commit(platform: Platform) -> None:
    received: list[Envelope] = []

    async def handler(envelope: Envelope) -> None:
        received.append(envelope)

    queue = f"t.changes.{uuid.uuid4().hex[:8]}"
    await platform.bus.declare_queue(QueueSpec(queue, ((NOTIFICATIONS_EXCHANGE, ""),)))
    consumer = await platform.bus.consume(queue, handler)
    try:
        exe = await add(platform, execution())
        await platform.relay.flush()
        deadline = asyncio.get_running_loop().time() + 5
        while not received and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110 - filled by the consumer task
            await asyncio.sleep(0.02)
    finally:
        await consumer.cancel()

    (envelope,) = received
    assert envelope.message_type is MessageType.CHANGE_NOTIFICATION
    assert envelope.payload["notification_type"] == "execution_created"
    assert envelope.payload["entity_id"] == exe.id
