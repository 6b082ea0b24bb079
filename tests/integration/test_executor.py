"""The executor service (docs/operations.md): rules → enforcements → executions → workers.

The service runs in-process against the test backend; workers are rows the tests keep fresh (or
let go stale), and a test plays the worker by ending executions and staging ``ExecutionCompleted``.
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
from attune.db.repos import executions as execution_repo
from attune.db.types import utcnow
from attune.executor.scheduler import runtime_name_of
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


# --- enforcement gate -----------------------------------------------------------------------------


async def test_an_enforcement_whose_rule_was_disabled_is_disabled_and_created_ones_are_recovered(
    platform: Platform,
) -> None:
    pack, action, trigger = await seed_pack(platform)
    live = await add_rule(platform, pack, action, trigger, "live")
    dormant = await add_rule(platform, pack, action, trigger, "dormant", enabled=False)
    # Left 'created' by a previous executor process (its message was consumed, its work lost).
    left = [
        models.Enforcement(
            rule=rule.id, rule_ref=rule.ref, trigger_ref=trigger.ref, payload={}, config={"k": 1}
        )
        for rule in (live, dormant)
    ]
    await add(platform, *left)
    async with running_executor(platform):

        async def decided() -> bool:
            # Recovery runs as the executor starts: poll, the outbox may still be empty meanwhile.
            statuses = [(await get(platform, models.Enforcement, e.id)).status for e in left]
            return statuses == ["processed", "disabled"]

        assert await eventually(decided)
        await settle(platform)
        processed = await get(platform, models.Enforcement, left[0].id)
        disabled = await get(platform, models.Enforcement, left[1].id)
        assert processed.resolved_at is not None and disabled.resolved_at is not None
        executions = await rows(platform, models.Execution)
        assert [(x.enforcement, x.config) for x in executions] == [(processed.id, {"k": 1})]


async def test_parameters_that_fail_validation_disable_the_enforcement(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    schema = {"count": {"type": "integer", "required": True}}
    pack, action, trigger = await seed_pack(platform, param_schema=schema)
    await add_rule(
        platform, pack, action, trigger, "typed", action_params={"count": "{{ event.payload.word }}"}
    )
    async with running_executor(platform):
        await api.post(EVENTS, json={"trigger_ref": trigger.ref, "payload": {"word": "many"}})
        await settle(platform)
        [enforcement] = await rows(platform, models.Enforcement)
        assert enforcement.status == "disabled"
        assert await rows(platform, models.Execution) == []


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


async def test_a_concurrency_limit_queues_the_next_run_until_the_first_completes(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    pack, action, trigger = await seed_pack(platform)
    await add_rule(platform, pack, action, trigger, "limited", action_params={"n": "{{ event.payload.n }}"})
    await add(platform, concurrency_policy(action, 1, apply_to_manual=False))
    await add_worker(platform, "w-fifo", ["shell"])
    async with running_executor(platform):
        for n in (1, 2, 3):
            await api.post(EVENTS, json={"trigger_ref": trigger.ref, "payload": {"n": n}})
        await settle(platform)
        enforcements = await rows(platform, models.Enforcement)
        assert [e.status for e in enforcements] == ["processed", "created", "created"]
        [first] = await rows(platform, models.Execution)
        # FIFO in enforcement order.
        assert (first.enforcement, first.config) == (enforcements[0].id, enforcements[0].config)
        await queue_stats(platform, action.id, active_count=1, queue_length=2, max_concurrent=1)

        # A manual run under a policy with ``apply_to_manual: false`` is not limited and its
        # completion frees no slot.
        manual = (await api.post(EXECUTE, json={"action_ref": action.ref, "parameters": {"n": 0}})).json()
        await settle(platform)
        await complete(platform, manual["data"]["id"], "completed", {"succeeded": True})
        await settle(platform)
        assert len(await rows(platform, models.Execution, models.Execution.enforcement.is_not(None))) == 1

        def run_of(enforcement: models.Enforcement) -> Callable[[], Awaitable[list[models.Execution]]]:
            return lambda: rows(platform, models.Execution, models.Execution.enforcement == enforcement.id)

        await complete(platform, first.id, "completed", {"succeeded": True})
        await settle(platform)
        [second] = await eventually(run_of(enforcements[1]), timeout=5)
        assert second.config == enforcements[1].config
        assert (await get(platform, models.Enforcement, enforcements[2].id)).status == "created"

        await complete(platform, second.id, "failed", {"succeeded": False, "error": "boom"})
        await settle(platform)
        await eventually(run_of(enforcements[2]), timeout=5)
        assert [e.status for e in await rows(platform, models.Enforcement)] == ["processed"] * 3
        await queue_stats(platform, action.id, active_count=1, queue_length=0, total_completed=2)


async def test_a_cancel_policy_at_its_limit_disables_the_enforcement(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    pack, action, trigger = await seed_pack(platform)
    await add_rule(platform, pack, action, trigger, "limited")
    await add(platform, concurrency_policy(action, 1, method="cancel"))
    async with running_executor(platform):
        for n in (1, 2):
            await api.post(EVENTS, json={"trigger_ref": trigger.ref, "payload": {"n": n}})
            await settle(platform)
        assert [e.status for e in await rows(platform, models.Enforcement)] == ["processed", "disabled"]
        assert len(await rows(platform, models.Execution)) == 1


async def test_a_rate_limit_disables_enforcements_beyond_it(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    pack, action, trigger = await seed_pack(platform)
    await add_rule(platform, pack, action, trigger, "limited")
    await add(
        platform,
        models.Policy(
            ref="demo.rate",
            name="rate",
            pack=pack.id,
            pack_ref=pack.ref,
            method="cancel",
            threshold=2,
            window_seconds=60,
            kind="rate_limit",
        ),
    )
    async with running_executor(platform):
        for n in (1, 2, 3):
            await api.post(EVENTS, json={"trigger_ref": trigger.ref, "payload": {"n": n}})
            await settle(platform)
        assert [e.status for e in await rows(platform, models.Enforcement)] == [
            "processed",
            "processed",
            "disabled",
        ]
        assert len(await rows(platform, models.Execution)) == 2


# --- scheduling -----------------------------------------------------------------------------------


async def test_the_least_loaded_live_worker_with_the_runtime_gets_the_execution(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    _, action, _ = await seed_pack(platform, runtime_name="Bash")
    await add_worker(platform, "w-a-python", ["python"])
    busy = await add_worker(platform, "w-b-busy", ["shell"], capacity=4)
    chosen = await add_worker(platform, "w-c-chosen", ["sh", "python"], capacity=4)
    await add_worker(platform, "w-d-stale", ["shell"], heartbeat_age=60)
    await add_worker(platform, "w-e-inactive", ["shell"], status="inactive")
    load = [models.Execution(action_ref="other.x", status="running", worker=busy.id) for _ in range(2)]
    load.append(models.Execution(action_ref="other.x", status="scheduled", worker=chosen.id))
    await add(platform, *load)
    dispatches = await record_dispatches(platform, chosen.id)
    async with running_executor(platform):
        response = await api.post(EXECUTE, json={"action_ref": action.ref, "parameters": {"x": 1}})
        execution_id = response.json()["data"]["id"]
        await settle(platform)
        execution = await get(platform, models.Execution, execution_id)
        assert (execution.status, execution.worker) == ("scheduled", chosen.id)
        assert [m.message_type for m in dispatches.messages] == [MessageType.EXECUTION_REQUESTED]
        assert dispatches.payloads()[0] == {
            "execution_id": execution_id,
            "worker_id": chosen.id,
            "action_ref": action.ref,
            "config": {"x": 1},
        }


def test_a_runtime_without_an_interpreter_binary_is_native() -> None:
    def row(config: dict[str, Any]) -> models.Runtime:
        return models.Runtime(ref="p.r", name="Custom", distributions={}, execution_config=config)

    assert runtime_name_of(row({})) == "native"
    assert runtime_name_of(row({"interpreter": {"binary": ""}})) == "native"
    assert runtime_name_of(row({"interpreter": {"binary": "ruby"}})) == "Custom"


async def test_without_a_live_worker_the_execution_fails_after_the_timeout(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    _, action, _ = await seed_pack(platform, runtime_name="Python")
    await add_worker(platform, "w-shell-only", ["shell"])
    completions = await record_completions(platform)
    async with running_executor(platform):
        execution_id = (await api.post(EXECUTE, json={"action_ref": action.ref})).json()["data"]["id"]
        await settle(platform)
        assert (await get(platform, models.Execution, execution_id)).status == "requested"

        async def failed() -> models.Execution | None:
            row = await get(platform, models.Execution, execution_id)
            return row if row.status == "failed" else None

        execution = await eventually(failed, timeout=5)
        assert execution.result == {"succeeded": False, "error": "No live worker can run runtime 'Python'"}
        await settle(platform)
        assert [(p["execution_id"], p["status"]) for p in completions.payloads()] == [
            (execution_id, "failed")
        ]


async def test_a_worker_that_appears_while_the_execution_waits_gets_it(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    platform.settings.executor.no_worker_timeout = 10
    _, action, _ = await seed_pack(platform)
    async with running_executor(platform):
        execution_id = (await api.post(EXECUTE, json={"action_ref": action.ref})).json()["data"]["id"]
        await settle(platform)
        worker = await add_worker(platform, "w-late", ["shell"])

        async def scheduled() -> models.Execution | None:
            row = await get(platform, models.Execution, execution_id)
            return row if row.status == "scheduled" else None

        assert (await eventually(scheduled, timeout=5)).worker == worker.id


async def test_a_cancelled_waiting_execution_is_never_dispatched(
    api: httpx.AsyncClient, platform: Platform, fake_clock: FakeClock
) -> None:
    platform.settings.executor.no_worker_timeout = 10
    _, action, _ = await seed_pack(platform)
    async with running_executor(platform):
        execution_id = (await api.post(EXECUTE, json={"action_ref": action.ref})).json()["data"]["id"]
        await settle(platform)
        await fake_clock.sleeping(executor_loops(platform) + 1)  # the scheduler waits for a worker
        assert (await api.post(f"/api/v1/executions/{execution_id}/cancel")).status_code == 200
        worker = await add_worker(platform, "w-after-cancel", ["shell"])
        dispatches = await record_dispatches(platform, worker.id)
        for _ in range(3):  # more than two re-checks (every 0.5 s)
            await pass_time(platform, fake_clock, 0.5)
        await settle(platform)
        execution = await get(platform, models.Execution, execution_id)
        assert (execution.status, execution.worker) == ("cancelled", None)
        assert dispatches.messages == []


async def test_a_workflow_action_fails_with_a_clear_error(platform: Platform) -> None:
    pack, action, _ = await seed_pack(platform, runtime_name=None)
    definition = models.WorkflowDefinition(
        ref="demo.flow", pack=pack.id, pack_ref=pack.ref, label="flow", version="1.0.0", definition={}
    )
    await add(platform, definition)
    async with platform.db.transaction() as session:
        row = await session.get(models.Action, action.id)
        assert row is not None
        row.workflow_def = definition.id
        execution = await execution_repo.request_execution(session, row, {}, box=None, source_service="test")
    async with running_executor(platform):

        async def finished() -> models.Execution | None:
            row = await get(platform, models.Execution, execution.id)
            return row if row.status not in ("requested", "scheduling") else None

        # Waited for, not settled: on RabbitMQ the executor may still be starting its consumers.
        failed = await eventually(finished)
        assert failed.status == "failed"
        assert failed.result["error"].startswith("Workflow 'demo.flow' is invalid")


# --- liveness, retries, monitors ------------------------------------------------------------------


async def test_a_stale_workers_executions_are_abandoned_within_two_heartbeats(
    platform: Platform, fake_clock: FakeClock
) -> None:
    platform.settings.worker.heartbeat_interval = 0.5
    _, action, _ = await seed_pack(platform)
    silent = await add_worker(platform, "w-silent", ["shell"])
    alive = await add_worker(platform, "w-alive", ["shell"])
    lost = models.Execution(
        action=action.id, action_ref=action.ref, status="running", worker=silent.id, max_retries=0
    )
    waiting = models.Execution(action=action.id, action_ref=action.ref, status="scheduled", worker=silent.id)
    safe = models.Execution(action=action.id, action_ref=action.ref, status="running", worker=alive.id)
    await add(platform, lost, waiting, safe)
    async with platform.db.transaction() as session:  # both last beat when the clock starts
        await session.execute(sa.update(models.Worker).values(last_heartbeat=fake_clock.now()))
    completions = await record_completions(platform)
    async with heartbeating(platform, alive), running_executor(platform):
        await fake_clock.sleeping(executor_loops(platform) + 1)
        silent_for = 0.0
        while (execution := await get(platform, models.Execution, lost.id)).status != "abandoned":
            assert silent_for < 2 * 0.5, "the silent worker's execution was not abandoned in time"
            await pass_time(platform, fake_clock, 0.125, others=1)  # a liveness sweep each time
            silent_for += 0.125
        # Not before 1.5 silent intervals (the monitor started with the clock, so it could see
        # them all), and within two.
        assert 1.5 * 0.5 < silent_for <= 2 * 0.5
        assert execution.result == {
            "succeeded": False,
            "error": "Worker 'w-silent' stopped heartbeating",
            "worker": silent.id,
        }

        async def rescheduled() -> models.Execution | None:
            row = await get(platform, models.Execution, waiting.id)
            return row if (row.status, row.worker) == ("scheduled", alive.id) else None

        # It never started: it goes to a live worker instead of being abandoned.
        assert await eventually(rescheduled, timeout=3)
        assert (await get(platform, models.Worker, silent.id)).status == "inactive"
        for _ in range(4):  # another heartbeat interval: the beating worker keeps its work
            await pass_time(platform, fake_clock, 0.125, others=1)
        assert (await get(platform, models.Execution, safe.id)).status == "running"
        assert (await get(platform, models.Worker, alive.id)).status == "active"
        await settle(platform)
        assert sorted((p["execution_id"], p["status"]) for p in completions.payloads()) == [
            (lost.id, "abandoned"),
        ]
        assert len(await rows(platform, models.Execution)) == 3  # no retries without a budget


async def test_a_worker_of_this_process_is_alive_whatever_its_heartbeat(
    api: httpx.AsyncClient, platform: Platform, fake_clock: FakeClock
) -> None:
    """The embedded server: a late heartbeat write of its own worker abandons nothing."""
    platform.settings.worker.heartbeat_interval = 0.5
    _, action, _ = await seed_pack(platform)
    local = await add_worker(platform, "w-local", ["shell"])  # never heartbeats in this test
    platform.local_workers.add(local.id)
    busy = models.Execution(action=action.id, action_ref=action.ref, status="running", worker=local.id)
    await add(platform, busy)
    async with running_executor(platform):
        await fake_clock.sleeping(executor_loops(platform))
        for _ in range(3):  # three heartbeat intervals of silence, a liveness sweep after each
            await pass_time(platform, fake_clock, 0.5)
        await settle(platform)
        assert (await get(platform, models.Execution, busy.id)).status == "running"
        assert (await get(platform, models.Worker, local.id)).status == "active"
        response = await api.post(EXECUTE, json={"action_ref": action.ref})
        await settle(platform)
        execution = await get(platform, models.Execution, response.json()["data"]["id"])
        assert (execution.status, execution.worker) == ("scheduled", local.id)


async def test_a_stale_workers_execution_with_retries_left_is_requested_again(platform: Platform) -> None:
    platform.settings.worker.heartbeat_interval = 0.5
    schema = {"token": {"type": "string", "secret": True}, "n": {"type": "integer"}}
    _, action, _ = await seed_pack(platform, param_schema=schema, max_retries=2)
    silent = await add_worker(platform, "w-gone", ["shell"])
    async with platform.db.transaction() as session:
        row = await session.get(models.Action, action.id)
        assert row is not None
        original = await execution_repo.request_execution(
            session,
            row,
            {"token": "s3cr3t", "n": 4},
            box=platform.secrets,
            source_service="test",
            enforcement=77,
        )
        original.status, original.worker = "running", silent.id
    async with running_executor(platform):

        async def retried() -> list[models.Execution]:
            return await rows(platform, models.Execution, models.Execution.original_execution == original.id)

        [retry] = await eventually(retried, timeout=3)
        assert (await get(platform, models.Execution, original.id)).status == "abandoned"
        assert (retry.retry_count, retry.retry_reason, retry.enforcement) == (1, "worker_heartbeat_stale", 77)
        assert retry.config == {"token": "********", "n": 4}
        assert execution_repo.full_parameters(retry, platform.secrets) == {"token": "s3cr3t", "n": 4}


async def test_a_retriable_failure_is_retried_after_the_backoff_once(
    api: httpx.AsyncClient, platform: Platform, fake_clock: FakeClock
) -> None:
    _, action, _ = await seed_pack(platform, max_retries=1)
    await add_worker(platform, "w-retry", ["shell"])
    async with running_executor(platform):
        first = (await api.post(EXECUTE, json={"action_ref": action.ref, "parameters": {"n": 1}})).json()[
            "data"
        ]
        await settle(platform)
        await complete(
            platform, first["id"], "failed", {"succeeded": False, "error": "Connection reset by peer"}
        )
        await settle(platform)
        # Redelivery of the completion must not create a second retry.
        await publish(
            platform,
            MessageType.EXECUTION_COMPLETED,
            {
                "execution_id": first["id"],
                "action_id": action.id,
                "action_ref": action.ref,
                "status": "failed",
                "completed_at": utcnow().isoformat(),
            },
        )

        async def retried() -> list[models.Execution]:
            return await rows(platform, models.Execution, models.Execution.original_execution == first["id"])

        await settle(platform)
        await fake_clock.sleeping(executor_loops(platform) + 1)  # the retry waits for its backoff
        await pass_time(platform, fake_clock, 0.7, others=1)
        assert await retried() == []  # not before the backoff (1 s ± 20 %)
        fake_clock.advance(0.6)
        [retry] = await eventually(retried, timeout=5)
        assert (retry.retry_count, retry.retry_reason, retry.config) == (1, "transient_error", {"n": 1})
        await settle(platform)
        await complete(
            platform, retry.id, "failed", {"succeeded": False, "error": "Connection reset by peer"}
        )
        await settle(platform)
        await fake_clock.sleeping(executor_loops(platform))
        assert fake_clock.pending == executor_loops(platform)  # no retry waits for its backoff
        await pass_time(platform, fake_clock, 1.5)  # longer than the first backoff
        await settle(platform)
        assert len(await retried()) == 1  # the budget (max_retries=1) is spent


async def test_a_failure_the_retry_policy_does_not_cover_is_not_retried(
    api: httpx.AsyncClient, platform: Platform, fake_clock: FakeClock
) -> None:
    _, action, _ = await seed_pack(platform, max_retries=3)
    async with platform.db.transaction() as session:
        row = await session.get(models.Action, action.id)
        assert row is not None
        row.retry_on = ["timeout"]  # retry: {count: 3, on: [timeout]}
    await add_worker(platform, "w-final", ["shell"])
    async with running_executor(platform):
        first = (await api.post(EXECUTE, json={"action_ref": action.ref})).json()["data"]
        await settle(platform)
        await complete(platform, first["id"], "failed", {"succeeded": False, "error": "exit code 3"})
        await settle(platform)
        await pass_time(platform, fake_clock, 1.5)  # longer than any first backoff
        await settle(platform)
        assert len(await rows(platform, models.Execution)) == 1


async def test_executions_left_scheduled_too_long_fail(platform: Platform) -> None:
    platform.settings.executor.scheduled_timeout = 30
    _, action, _ = await seed_pack(platform)
    worker = await add_worker(platform, "w-slow", ["shell"])
    old = models.Execution(
        action=action.id,
        action_ref=action.ref,
        status="scheduled",
        worker=worker.id,
        updated=utcnow() - timedelta(minutes=2),
    )
    fresh = models.Execution(action=action.id, action_ref=action.ref, status="scheduled", worker=worker.id)
    await add(platform, old, fresh)
    completions = await record_completions(platform)
    async with heartbeating(platform, worker), running_executor(platform):

        async def failed() -> models.Execution | None:
            row = await get(platform, models.Execution, old.id)
            return row if row.status == "failed" else None

        execution = await eventually(failed, timeout=5)
        assert execution.result["failed_by"] == "execution_timeout_monitor"
        assert execution.result["timeout_seconds"] == 30
        assert execution.result["age_seconds"] >= 119
        assert execution.result["error"].startswith(
            "Execution timeout: worker did not pick up task within 30 seconds"
        )
        assert (await get(platform, models.Execution, fresh.id)).status == "scheduled"
        await settle(platform)
        [completion] = completions.payloads()
        assert (completion["execution_id"], completion["action_id"], completion["status"]) == (
            old.id,
            action.id,
            "failed",
        )


async def test_an_expired_dispatch_fails_its_execution(platform: Platform) -> None:
    _, action, _ = await seed_pack(platform)
    worker = await add_worker(platform, "w-deaf", ["shell"])
    expired = models.Execution(action=action.id, action_ref=action.ref, status="scheduled", worker=worker.id)
    other = await add_worker(platform, "w-other", ["shell"])
    moved = models.Execution(action=action.id, action_ref=action.ref, status="scheduled", worker=other.id)
    await add(platform, expired, moved)
    completions = await record_completions(platform)
    async with heartbeating(platform, worker, other), running_executor(platform):
        for execution in (expired, moved):
            envelope = make_envelope(
                MessageType.EXECUTION_REQUESTED,
                {"execution_id": execution.id, "worker_id": worker.id, "action_ref": action.ref},
                source_service="executor",
            )
            await platform.bus.publish("attune.dlx", f"execution.dispatch.worker.{worker.id}", envelope)
        await publish(platform, MessageType.EVENT_CREATED, {"event_id": 999, "trigger_ref": "x.y"})  # dropped
        await settle(platform)

        async def ended() -> models.Execution | None:
            row = await get(platform, models.Execution, expired.id)
            return row if row.status != "scheduled" else None

        # Waited for: under load the dead-letter consumer may commit after the queues drained.
        failed = await eventually(ended)
        assert failed.status == "failed"
        assert failed.result["error"] == "Worker queue TTL expired"
        assert str(worker.id) in failed.result["message"]
        assert (await get(platform, models.Execution, moved.id)).status == "scheduled"

        async def completed() -> list[tuple[int, str]]:
            return [(p["execution_id"], p["status"]) for p in completions.payloads()]

        # The completion travels through the broker after the commit: wait for it, then once more
        # for anything that should not be there.
        await eventually(completed)
        await settle(platform)
        assert await completed() == [(expired.id, "failed")]
