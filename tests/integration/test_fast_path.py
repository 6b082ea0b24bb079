"""The rule fast path (docs/performance.md, "Next steps" item 1; issue #14 item 1).

When no concurrency or rate-limit policy applies to a rule's action, the EventProcessor decides the
enforcement in its own transaction: the execution is requested and the enforcement ``processed``,
``ExecutionRequested`` is staged and ``EnforcementCreated`` is not. With a policy the enforcement
takes the policy path as before. Either way, redelivered messages create nothing twice
(docs/operations.md, "Guarantees").
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from attune.db import models
from attune.db.repos import enforcements as enforcement_repo
from attune.executor.enforcements import EnforcementProcessor
from attune.executor.events import EventProcessor
from attune.messaging.messages import Envelope, MessageType, make_envelope
from attune.messaging.topology import EXECUTIONS_EXCHANGE
from attune.platform import Platform
from tests.integration.test_executor import (
    EVENTS,
    Recorder,
    add,
    add_rule,
    add_worker,
    clean_bus,  # noqa: F401 - autouse fixture
    complete,
    concurrency_policy,
    eventually,
    get,
    publish,
    queue_stats,
    record,
    record_dispatches,
    rows,
    running_executor,
    seed_pack,
    settings,  # noqa: F401 - short timings
    settle,
)


def created(event: models.Event) -> Envelope:
    """The ``EventCreated`` message of ``event``."""
    payload = {"event_id": event.id, "trigger_ref": event.trigger_ref, "payload": event.payload}
    return make_envelope(MessageType.EVENT_CREATED, payload, source_service="test")


async def record_pipeline(platform: Platform) -> Recorder:
    """Record every ``EnforcementCreated`` and ``ExecutionRequested`` published."""
    return await record(
        platform, (EXECUTIONS_EXCHANGE, "enforcement.created"), (EXECUTIONS_EXCHANGE, "execution.requested")
    )


async def test_without_a_policy_the_event_transaction_requests_the_execution(platform: Platform) -> None:
    pack, action, trigger = await seed_pack(platform)
    await add_rule(platform, pack, action, trigger, "fast", action_params={"n": "{{ event.payload.n }}"})
    event = models.Event(trigger_ref=trigger.ref, trigger=trigger.id, payload={"n": 7})
    await add(platform, event)
    pipeline = await record_pipeline(platform)
    enforcements = EnforcementProcessor(platform)
    events = EventProcessor(platform, enforcements=enforcements)
    await events.handle(created(event))

    # One handler call, one transaction: the enforcement is decided and its run requested.
    [enforcement] = await rows(platform, models.Enforcement)
    assert enforcement.status == "processed"
    assert enforcement.resolved_at is not None
    [execution] = await rows(platform, models.Execution)
    assert (execution.enforcement, execution.status, execution.config) == (
        enforcement.id,
        "requested",
        {"n": 7},
    )
    await settle(platform)
    assert [p["execution_id"] for p in pipeline.payloads(MessageType.EXECUTION_REQUESTED)] == [execution.id]
    assert pipeline.payloads(MessageType.ENFORCEMENT_CREATED) == []
    # The run holds an unlimited slot, as on the policy path: a policy added later counts it.
    assert enforcements.slots.snapshot(action.id).active_count == 1
    await enforcements.release_slot(execution.id)
    assert enforcements.slots.snapshot(action.id).active_count == 0


async def test_a_fast_path_run_has_no_enforcement_message_and_redeliveries_create_nothing_twice(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    pack, action, trigger = await seed_pack(platform)
    rule = await add_rule(platform, pack, action, trigger, "fast")
    worker = await add_worker(platform, "w-fast", ["shell"])
    dispatches = await record_dispatches(platform, worker.id)
    pipeline = await record_pipeline(platform)
    async with running_executor(platform):
        event = (await api.post(EVENTS, json={"trigger_ref": trigger.ref, "payload": {"n": 1}})).json()[
            "data"
        ]
        await settle(platform)
        [enforcement] = await rows(platform, models.Enforcement)
        [execution] = await rows(platform, models.Execution)
        assert (enforcement.status, execution.status) == ("processed", "scheduled")
        assert pipeline.payloads(MessageType.ENFORCEMENT_CREATED) == []
        assert [p["execution_id"] for p in pipeline.payloads(MessageType.EXECUTION_REQUESTED)] == [
            execution.id
        ]
        assert len(dispatches.messages) == 1

        # Each message of the chain, delivered again, several times and concurrently.
        again = {"event_id": event["id"], "trigger_ref": trigger.ref, "payload": {"n": 1}}
        enforced = {
            "enforcement_id": enforcement.id,
            "rule_id": rule.id,
            "rule_ref": rule.ref,
            "trigger_ref": trigger.ref,
        }
        requested = {"execution_id": execution.id, "action_id": action.id, "action_ref": action.ref}
        await asyncio.gather(
            *(publish(platform, MessageType.EVENT_CREATED, again) for _ in range(5)),
            *(publish(platform, MessageType.ENFORCEMENT_CREATED, enforced) for _ in range(5)),
            *(publish(platform, MessageType.EXECUTION_REQUESTED, requested) for _ in range(5)),
        )
        await settle(platform)
        assert len(await rows(platform, models.Enforcement)) == 1
        assert len(await rows(platform, models.Execution)) == 1
        assert len(dispatches.messages) == 1
        assert (await get(platform, models.Enforcement, enforcement.id)).status == "processed"


async def test_with_a_concurrency_policy_the_policy_path_decides_and_still_throttles(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    pack, action, trigger = await seed_pack(platform)
    await add_rule(platform, pack, action, trigger, "limited")
    await add(platform, concurrency_policy(action, 1, apply_to_manual=False))
    await add_worker(platform, "w-limited", ["shell"])
    pipeline = await record_pipeline(platform)
    async with running_executor(platform):
        for n in (1, 2):
            await api.post(EVENTS, json={"trigger_ref": trigger.ref, "payload": {"n": n}})
        await settle(platform)
        enforcements = await rows(platform, models.Enforcement)
        assert [e.status for e in enforcements] == ["processed", "created"]
        assert [p["enforcement_id"] for p in pipeline.payloads(MessageType.ENFORCEMENT_CREATED)] == [
            e.id for e in enforcements
        ]
        [first] = await rows(platform, models.Execution)
        await complete(platform, first.id, "completed", {"succeeded": True})
        await settle(platform)
        await eventually(lambda: rows(platform, models.Execution, models.Execution.id != first.id), timeout=5)
        assert [e.status for e in await rows(platform, models.Enforcement)] == ["processed", "processed"]


async def test_fast_path_runs_count_against_a_concurrency_policy_added_later(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    pack, action, trigger = await seed_pack(platform)
    await add_rule(platform, pack, action, trigger, "later")
    await add_worker(platform, "w-later", ["shell"])
    async with running_executor(platform):
        await api.post(EVENTS, json={"trigger_ref": trigger.ref, "payload": {"n": 1}})
        await settle(platform)
        [first] = await rows(platform, models.Execution)
        await queue_stats(platform, action.id, active_count=1)
        # The policy applies from its commit; the fast-path run still holds its slot.
        await add(platform, concurrency_policy(action, 1, apply_to_manual=False))
        await api.post(EVENTS, json={"trigger_ref": trigger.ref, "payload": {"n": 2}})
        await settle(platform)
        assert [e.status for e in await rows(platform, models.Enforcement)] == ["processed", "created"]
        await complete(platform, first.id, "completed", {"succeeded": True})
        await settle(platform)
        await eventually(lambda: rows(platform, models.Execution, models.Execution.id != first.id), timeout=5)


async def test_a_fast_path_transaction_that_fails_frees_its_slots_and_leaves_nothing(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    pack, action, trigger = await seed_pack(platform)
    for name in ("first", "second"):
        await add_rule(platform, pack, action, trigger, name)
    event = models.Event(trigger_ref=trigger.ref, trigger=trigger.id, payload={})
    await add(platform, event)
    enforcements = EnforcementProcessor(platform)
    events = EventProcessor(platform, enforcements=enforcements)
    real = enforcement_repo.add_for_event
    calls = 0

    async def second_fails(session: object, enforcement: models.Enforcement) -> bool:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("database went away")
        return await real(session, enforcement)  # type: ignore[arg-type]

    monkeypatch.setattr(enforcement_repo, "add_for_event", second_fails)
    envelope = created(event)
    with pytest.raises(RuntimeError):
        await events.handle(envelope)
    assert await rows(platform, models.Enforcement) == []
    assert await rows(platform, models.Execution) == []
    assert enforcements.slots.snapshot(action.id).active_count == 0

    # Delivered again, it does the whole work once.
    monkeypatch.setattr(enforcement_repo, "add_for_event", real)
    await events.handle(envelope)
    assert len(await rows(platform, models.Execution)) == 2
    assert enforcements.slots.snapshot(action.id).active_count == 2


async def test_with_a_live_worker_the_event_transaction_also_dispatches_the_run(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    pack, action, trigger = await seed_pack(platform)
    rule = await add_rule(platform, pack, action, trigger, "fastest")
    worker = await add_worker(platform, "w-fastest", ["shell"])
    dispatches = await record_dispatches(platform, worker.id)
    pipeline = await record_pipeline(platform)
    async with running_executor(platform):
        # The first run to a worker goes through the scheduler, which declares the worker's queue.
        await api.post(EVENTS, json={"trigger_ref": trigger.ref, "payload": {"n": 1}})
        await settle(platform)
        assert len(pipeline.payloads(MessageType.EXECUTION_REQUESTED)) == 1
        event = (await api.post(EVENTS, json={"trigger_ref": trigger.ref, "payload": {"n": 2}})).json()[
            "data"
        ]
        await settle(platform)
        first, second = await rows(platform, models.Execution)
        assert (second.status, second.worker) == ("scheduled", worker.id)
        # No scheduler hop for the second: its dispatch was staged with the enforcement.
        assert [p["execution_id"] for p in pipeline.payloads(MessageType.EXECUTION_REQUESTED)] == [first.id]
        assert pipeline.payloads(MessageType.ENFORCEMENT_CREATED) == []
        assert sorted(m.payload["execution_id"] for m in dispatches.messages) == [first.id, second.id]

        [_, enforcement] = await rows(platform, models.Enforcement)
        await asyncio.gather(
            publish(
                platform, MessageType.EVENT_CREATED, {"event_id": event["id"], "trigger_ref": trigger.ref}
            ),
            publish(
                platform,
                MessageType.ENFORCEMENT_CREATED,
                {
                    "enforcement_id": enforcement.id,
                    "rule_id": rule.id,
                    "rule_ref": rule.ref,
                    "trigger_ref": "x",
                },
            ),
            publish(
                platform,
                MessageType.EXECUTION_REQUESTED,
                {"execution_id": second.id, "action_id": action.id, "action_ref": action.ref},
            ),
        )
        await settle(platform)
        assert len(await rows(platform, models.Execution)) == 2
        assert len(dispatches.messages) == 2
