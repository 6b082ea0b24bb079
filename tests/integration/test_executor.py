"""The executor service (docs/operations.md): rules → enforcements → executions → workers.

The service runs in-process against the test backend; workers are rows the tests keep fresh (or
let go stale), and a test plays the worker by ending executions and staging ``ExecutionCompleted``.
This module holds that harness (imported by the other executor tests) and the rule-matching tests;
test_executor_gate, test_executor_scheduling and test_executor_liveness hold the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

import httpx
import pytest
import sqlalchemy as sa

from attune.db import models
from attune.db.outbox import enqueue
from attune.db.types import utcnow
from attune.executor.service import ExecutorService
from attune.messaging.messages import Envelope, MessageType, make_envelope, routing_for
from attune.messaging.topology import EXECUTIONS_EXCHANGE, QueueSpec, worker_execution_queue
from attune.platform import Platform
from attune.settings import Settings
from attune.testing.clock import FakeClock

T = TypeVar("T")

EVENTS = "/api/v1/events"
EXECUTE = "/api/v1/executions/execute"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Short timings so waiting and liveness are observable in a test."""
    settings.worker.heartbeat_interval = 5
    settings.executor.no_worker_timeout = 1.0
    settings.executor.policy_refresh_interval = 0.2
    settings.executor.queue_stats_interval = 0.05
    return settings


@pytest.fixture(autouse=True)
async def clean_bus(platform: Platform) -> AsyncIterator[None]:
    """RabbitMQ queues outlive a test (the prefix is per session): delete what this test declared."""
    yield
    delete = getattr(platform.bus, "delete_declared", None)
    if delete is not None:
        await delete()


@contextlib.asynccontextmanager
async def running_executor(platform: Platform) -> AsyncIterator[None]:
    """Run ``ExecutorService`` as a task for the duration of the block."""
    stop = asyncio.Event()
    task = asyncio.create_task(ExecutorService().run(platform, stop))
    # Let it declare its queues, recover and start consuming.
    await asyncio.sleep(0.1)
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


def executor_loops(platform: Platform) -> int:
    """How many periodic loops the executor parks on the clock between rounds (liveness, policy
    refresh, inquiry timeouts, workflow timers, and the scheduled-timeout monitor when enabled)."""
    return 4 + int(platform.settings.executor.enable_timeout_monitor)


async def pass_time(platform: Platform, clock: FakeClock, seconds: float, *, others: int = 0) -> None:
    """Advance the fake clock and wait until the executor's loops (and ``others`` sleepers) have
    done their round and are parked again."""
    clock.advance(seconds)
    await clock.sleeping(executor_loops(platform) + others)


async def outbox_empty(platform: Platform) -> bool:
    async with platform.db.session() as session:
        return not await session.scalar(sa.select(sa.func.count()).select_from(models.OutboxMessage))


async def settle(platform: Platform, rounds: int = 8) -> None:
    """Relay staged messages and wait for the consumers until nothing is left to do."""
    for _ in range(rounds):
        await platform.relay.flush()
        await platform.bus.join(timeout=15)
        if await outbox_empty(platform):
            return


async def eventually(probe: Callable[[], Awaitable[T | None]], timeout: float = 10.0) -> T:  # noqa: ASYNC109
    """Poll ``probe`` (relaying the outbox meanwhile) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        runtime_value = await probe()
        if runtime_value:
            return runtime_value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.05)


class Recorder:
    """Collects the envelopes delivered to a test queue."""

    def __init__(self) -> None:
        self.messages: list[Envelope] = []

    async def handle(self, envelope: Envelope) -> None:
        self.messages.append(envelope)

    def payloads(self, message_type: MessageType | None = None) -> list[dict[str, Any]]:
        return [m.payload for m in self.messages if message_type is None or m.message_type is message_type]


async def record(platform: Platform, *bindings: tuple[str, str]) -> Recorder:
    """Declare a fresh queue with ``bindings`` and record what arrives on it."""
    spec = QueueSpec(f"test.recorder.{uuid.uuid4().hex[:8]}", tuple(bindings))
    await platform.bus.declare_queue(spec)
    recorder = Recorder()
    await platform.bus.consume(spec.name, recorder.handle)
    return recorder


async def record_completions(platform: Platform) -> Recorder:
    return await record(platform, (EXECUTIONS_EXCHANGE, "execution.completed"))


async def record_dispatches(platform: Platform, worker_id: int) -> Recorder:
    spec = worker_execution_queue(worker_id)
    await platform.bus.declare_queue(spec)
    recorder = Recorder()
    await platform.bus.consume(spec.name, recorder.handle)
    return recorder


async def publish(platform: Platform, message_type: MessageType, payload: dict[str, Any]) -> None:
    """Publish a message straight to the bus (a redelivery, a dead letter...)."""
    exchange, key = routing_for(message_type)
    await platform.bus.publish(exchange, key, make_envelope(message_type, payload, source_service="test"))


async def add(platform: Platform, *rows: Any) -> None:
    async with platform.db.transaction() as session:
        for row in rows:
            session.add(row)
            await session.flush()


async def get(platform: Platform, model: type[T], row_id: int) -> T:
    async with platform.db.session() as session:
        row = await session.get(model, row_id)
    assert row is not None
    return row


async def queue_stats(platform: Platform, action_id: int, **expected: Any) -> models.QueueStats:
    """The action's ``queue_stats`` row once its counters are ``expected`` (the executor writes
    them within ``executor.queue_stats_interval``)."""

    async def probe() -> models.QueueStats | None:
        async with platform.db.session() as session:
            row = await session.get(models.QueueStats, action_id)
        if row is not None and all(getattr(row, name) == value for name, value in expected.items()):
            return row
        return None

    try:
        return await eventually(probe, timeout=5)
    except AssertionError:
        async with platform.db.session() as session:
            row = await session.get(models.QueueStats, action_id)
        shown = {name: getattr(row, name) for name in expected} if row is not None else None
        raise AssertionError(f"queue_stats of action {action_id}: {shown}, expected {expected}") from None


async def rows(platform: Platform, model: type[T], *where: Any) -> list[T]:
    async with platform.db.session() as session:
        query = sa.select(model).where(*where).order_by(model.id)  # type: ignore[attr-defined]
        return list((await session.execute(query)).scalars())


async def seed_pack(
    platform: Platform,
    *,
    pack_ref: str = "demo",
    config: dict[str, Any] | None = None,
    runtime_name: str | None = "Shell",
    execution_config: dict[str, Any] | None = None,
    param_schema: Any = None,
    max_retries: int = 0,
) -> tuple[models.Pack, models.Action, models.Trigger]:
    """A pack with one action (``<pack>.run``) on a runtime, and one trigger (``<pack>.tick``)."""
    pack = models.Pack(ref=pack_ref, label=pack_ref, version="1.0.0", config=config or {})
    await add(platform, pack)
    runtime_id = None
    if runtime_name is not None:
        runtime_row = models.Runtime(
            ref=f"{pack_ref}.{runtime_name.lower()}",
            pack=pack.id,
            pack_ref=pack_ref,
            name=runtime_name,
            distributions={},
            execution_config=(
                execution_config
                if execution_config is not None
                else {"interpreter": {"binary": "/bin/bash", "args": [], "file_extension": ".sh"}}
            ),
        )
        await add(platform, runtime_row)
        runtime_id = runtime_row.id
    action = models.Action(
        ref=f"{pack_ref}.run",
        pack=pack.id,
        pack_ref=pack_ref,
        label="run",
        description="",
        entrypoint="run.sh",
        runtime=runtime_id,
        param_schema=param_schema,
        max_retries=max_retries,
    )
    trigger = models.Trigger(ref=f"{pack_ref}.tick", pack=pack.id, pack_ref=pack_ref, label="tick")
    await add(platform, action, trigger)
    return pack, action, trigger


async def add_rule(
    platform: Platform,
    pack: models.Pack,
    action: models.Action,
    trigger: models.Trigger,
    name: str,
    *,
    conditions: Any = None,
    action_params: Any = None,
    enabled: bool = True,
) -> models.Rule:
    rule = models.Rule(
        ref=f"{pack.ref}.{name}",
        pack=pack.id,
        pack_ref=pack.ref,
        label=name,
        description="",
        action=action.id,
        action_ref=action.ref,
        trigger=trigger.id,
        trigger_ref=trigger.ref,
        conditions=conditions if conditions is not None else [],
        action_params=action_params if action_params is not None else {},
        enabled=enabled,
    )
    await add(platform, rule)
    return rule


async def add_worker(
    platform: Platform,
    name: str,
    runtimes: list[str],
    *,
    capacity: int = 4,
    heartbeat_age: float = 0.0,
    status: str = "active",
) -> models.Worker:
    worker = models.Worker(
        name=name,
        worker_type="local",
        worker_role="action",
        status=status,
        capabilities={"runtimes": runtimes, "max_concurrent_executions": capacity, "worker_version": "0.1.0"},
        last_heartbeat=utcnow() - timedelta(seconds=heartbeat_age),
    )
    await add(platform, worker)
    return worker


async def complete(platform: Platform, execution_id: int, status: str, result: Any) -> None:
    """Play the worker: end an execution and stage ``ExecutionCompleted`` in one transaction."""
    async with platform.db.transaction() as session:
        execution = await session.get(models.Execution, execution_id)
        assert execution is not None
        execution.status = status
        execution.result = result
        enqueue(
            session,
            MessageType.EXECUTION_COMPLETED,
            {
                "execution_id": execution.id,
                "action_id": execution.action or 0,
                "action_ref": execution.action_ref,
                "status": status,
                "result": result,
                "completed_at": utcnow().isoformat(),
            },
            source_service="worker",
        )


@contextlib.asynccontextmanager
async def heartbeating(
    platform: Platform, *workers: models.Worker, every: float = 0.1
) -> AsyncIterator[None]:
    """Keep ``workers`` fresh, as their processes would."""

    async def beat() -> None:
        while True:
            async with platform.db.transaction() as session:
                await session.execute(
                    sa.update(models.Worker)
                    .where(models.Worker.id.in_([w.id for w in workers]))
                    .values(last_heartbeat=platform.clock.now())
                )
            await platform.clock.sleep(every)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def concurrency_policy(
    action: models.Action, threshold: int, method: str = "enqueue", *, apply_to_manual: bool = True
) -> models.Policy:
    return models.Policy(
        apply_to_manual=apply_to_manual,
        ref=f"{action.pack_ref}.limit_{method}",
        name="limit",
        pack=action.pack,
        pack_ref=action.pack_ref,
        action=action.id,
        action_ref=action.ref,
        method=method,
        threshold=threshold,
        kind="concurrency",
    )


def rate_policy(pack: models.Pack) -> models.Policy:
    """A pack-wide rate limit: two runs a minute, the rest cancelled."""
    return models.Policy(
        ref="demo.rate",
        name="rate",
        pack=pack.id,
        pack_ref=pack.ref,
        method="cancel",
        threshold=2,
        window_seconds=60,
        kind="rate_limit",
    )


# --- rule matching and templates ------------------------------------------------------------------


async def test_an_event_fires_only_the_rules_whose_conditions_match(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    pack, action, trigger = await seed_pack(platform, config={"region": "eu-west", "limits": {"max": 5}})
    matching = await add_rule(
        platform,
        pack,
        action,
        trigger,
        "a_high",
        conditions=[{"field": "level", "operator": "equals", "value": "high"}],
        action_params={
            "count": "{{ event.payload.count }}",
            "message": "count={{ event.payload.count }} on {{ event.payload.host }}",
            "region": "{{ pack.config.region }}",
            "limits": "{{ pack.config.limits }}",
            "rule": "{{ system.rule.ref }}",
            "fixed": 7,
        },
    )
    await add_rule(
        platform,
        pack,
        action,
        trigger,
        "b_low",
        conditions=[{"field": "level", "operator": "equals", "value": "low"}],
    )
    await add_rule(platform, pack, action, trigger, "c_disabled", enabled=False)
    # A path that does not exist is an error: that rule is skipped, the others still fire.
    await add_rule(
        platform,
        pack,
        action,
        trigger,
        "d_broken",
        conditions=[{"field": "no.such", "operator": "equals", "value": 1}],
    )
    expression = await add_rule(
        platform,
        pack,
        action,
        trigger,
        "e_expression",
        conditions={"expression": "{{ event.payload.level == 'high' and event.payload.count > 3 }}"},
    )

    async with running_executor(platform):
        response = await api.post(
            EVENTS, json={"trigger_ref": trigger.ref, "payload": {"level": "high", "count": 5, "host": "db1"}}
        )
        assert response.status_code == 201
        event_id = response.json()["data"]["id"]
        await settle(platform)

        enforcements = await rows(platform, models.Enforcement)
        assert [e.rule for e in enforcements] == [matching.id, expression.id]
        first = enforcements[0]
        assert first.event == event_id
        assert first.trigger_ref == trigger.ref
        assert first.payload == {"level": "high", "count": 5, "host": "db1"}
        assert first.conditions == [{"field": "level", "operator": "equals", "value": "high"}]
        assert first.config == {
            "count": 5,
            "message": "count=5 on db1",
            "region": "eu-west",
            "limits": {"max": 5},
            "rule": "demo.a_high",
            "fixed": 7,
        }
        assert [e.status for e in enforcements] == ["processed", "processed"]
        executions = await rows(platform, models.Execution)
        assert sorted((x.enforcement, x.action, x.config) for x in executions) == [
            (first.id, action.id, first.config),
            (enforcements[1].id, action.id, {}),
        ]


async def test_an_event_for_one_rule_instance_fires_only_that_rule(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    pack, action, trigger = await seed_pack(platform)
    await add_rule(platform, pack, action, trigger, "one")
    two = await add_rule(platform, pack, action, trigger, "two")
    async with running_executor(platform):
        response = await api.post(
            EVENTS, json={"trigger_ref": trigger.ref, "payload": {}, "trigger_instance_id": f"rule_{two.id}"}
        )
        assert response.status_code == 201
        await settle(platform)
        assert [e.rule for e in await rows(platform, models.Enforcement)] == [two.id]


async def test_redelivered_messages_create_nothing_twice(api: httpx.AsyncClient, platform: Platform) -> None:
    pack, action, trigger = await seed_pack(platform)
    rule = await add_rule(platform, pack, action, trigger, "only")
    worker = await add_worker(platform, "w-redelivery", ["shell"])
    dispatches = await record_dispatches(platform, worker.id)
    async with running_executor(platform):
        event = (await api.post(EVENTS, json={"trigger_ref": trigger.ref, "payload": {"n": 1}})).json()[
            "data"
        ]
        await settle(platform)
        [enforcement] = await rows(platform, models.Enforcement)
        [execution] = await rows(platform, models.Execution)
        assert execution.status == "scheduled"
        assert len(dispatches.messages) == 1

        await publish(
            platform,
            MessageType.EVENT_CREATED,
            {"event_id": event["id"], "trigger_ref": trigger.ref, "payload": {"n": 1}},
        )
        await publish(
            platform,
            MessageType.ENFORCEMENT_CREATED,
            {
                "enforcement_id": enforcement.id,
                "rule_id": rule.id,
                "rule_ref": rule.ref,
                "trigger_ref": trigger.ref,
            },
        )
        await publish(
            platform,
            MessageType.EXECUTION_REQUESTED,
            {"execution_id": execution.id, "action_id": action.id, "action_ref": action.ref},
        )
        await settle(platform)
        assert len(await rows(platform, models.Enforcement)) == 1
        assert len(await rows(platform, models.Execution)) == 1
        assert len(dispatches.messages) == 1
