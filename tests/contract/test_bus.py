"""Bus contract: every behaviour below holds for MemoryBus and RabbitMQBus alike."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pydantic
import pytest

from attune.bus.base import BusError, Retryable
from attune.bus.factory import create_bus
from attune.bus.memory import MemoryBus
from attune.bus.rabbitmq import RabbitMQBus
from attune.errors import ConfigError
from attune.messaging import topology
from attune.messaging.messages import (
    Envelope,
    ExecutionCompleted,
    MessageType,
    dispatch_routing,
    make_envelope,
    routing_for,
)
from attune.messaging.topology import QueueSpec

if TYPE_CHECKING:
    from tests.contract.conftest import ContractBus

EXECUTIONS = topology.EXECUTIONS_EXCHANGE
DLQ = topology.DLX_QUEUE.name
WAIT_SECONDS = 5.0


def event(n: int = 1) -> Envelope:
    return make_envelope(
        MessageType.EVENT_CREATED,
        {"event_id": n, "trigger_ref": "core.webhook", "payload": {"n": n}},
        source_service="api",
    )


def enforcement(n: int) -> Envelope:
    return make_envelope(
        MessageType.ENFORCEMENT_CREATED,
        {"enforcement_id": n, "rule_ref": "core.r", "trigger_ref": "core.t", "payload": {}},
        source_service="executor",
    )


class Recorder:
    """A handler that records envelopes and lets tests wait for a count."""

    def __init__(self) -> None:
        self.seen: list[Envelope] = []
        self._changed = asyncio.Event()

    async def __call__(self, envelope: Envelope) -> None:
        self.seen.append(envelope)
        self._changed.set()

    async def wait_for(self, count: int) -> list[Envelope]:
        async with asyncio.timeout(WAIT_SECONDS):
            while len(self.seen) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.seen

    @property
    def ids(self) -> list[str]:
        return [envelope.message_id for envelope in self.seen]


async def eventually(check: Callable[[], Awaitable[bool]]) -> None:
    """Poll a broker-side condition (dead-lettering happens asynchronously on RabbitMQ)."""
    for _ in range(int(WAIT_SECONDS / 0.02)):
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached in time")


# --- delivery and routing -------------------------------------------------------------------


async def test_round_trip_keeps_every_envelope_field(bus: ContractBus) -> None:
    await bus.declare_queue(topology.EXECUTOR_EVENTS_QUEUE)
    recorder = Recorder()
    await bus.consume(topology.EXECUTOR_EVENTS_QUEUE.name, recorder)
    sent = make_envelope(
        MessageType.EVENT_CREATED,
        {"event_id": 7, "trigger_ref": "core.webhook", "payload": {"a": [1, 2]}},
        source_service="api",
        correlation_id="6f1c3a38-5a7e-4b53-9d0c-4f0f7c3f2d11",
    )

    await bus.publish(*routing_for(MessageType.EVENT_CREATED), sent)

    [received] = await recorder.wait_for(1)
    assert received == sent
    assert received.correlation_id == "6f1c3a38-5a7e-4b53-9d0c-4f0f7c3f2d11"
    assert received.headers.source_service == "api"
    assert received.payload["payload"] == {"a": [1, 2]}


async def test_messages_wait_in_the_queue_until_a_consumer_arrives(bus: ContractBus) -> None:
    await bus.declare_queue(topology.EXECUTOR_EVENTS_QUEUE)
    await bus.publish(*routing_for(MessageType.EVENT_CREATED), event())
    recorder = Recorder()

    await bus.consume(topology.EXECUTOR_EVENTS_QUEUE.name, recorder)

    assert len(await recorder.wait_for(1)) == 1


async def test_publish_many_delivers_a_batch_in_order_and_confirms_each(bus: ContractBus) -> None:
    await bus.declare_queue(topology.EXECUTOR_EVENTS_QUEUE)
    recorder = Recorder()
    await bus.consume(topology.EXECUTOR_EVENTS_QUEUE.name, recorder)
    batch = [event(n) for n in range(50)]

    outcomes = await bus.publish_many([(*routing_for(MessageType.EVENT_CREATED), e) for e in batch])

    assert outcomes == [None] * 50
    assert [e.message_id for e in await recorder.wait_for(50)] == [e.message_id for e in batch]


async def test_publish_many_reports_a_refused_message_and_keeps_the_ones_before_it(
    bus: ContractBus,
) -> None:
    await bus.declare_queue(topology.EXECUTOR_EVENTS_QUEUE)
    recorder = Recorder()
    await bus.consume(topology.EXECUTOR_EVENTS_QUEUE.name, recorder)
    key = routing_for(MessageType.EVENT_CREATED)[1]
    first, second = event(1), event(2)

    outcomes = await bus.publish_many(
        [(topology.EVENTS_EXCHANGE, key, first), ("no.such.exchange", key, second)]
    )

    assert outcomes[0] is None
    assert isinstance(outcomes[1], BusError)
    assert [e.message_id for e in await recorder.wait_for(1)] == [first.message_id]
    assert await bus.publish_many([]) == []


async def test_topic_patterns_follow_amqp_word_rules(bus: ContractBus) -> None:
    star = QueueSpec("t.star", ((EXECUTIONS, "execution.*"),))
    for spec in (topology.ENFORCEMENTS_QUEUE, topology.EXECUTION_REQUESTS_QUEUE, star):
        await bus.declare_queue(spec)
    received: dict[str, Recorder] = {}
    for spec in (topology.ENFORCEMENTS_QUEUE, topology.EXECUTION_REQUESTS_QUEUE, star):
        received[spec.name] = Recorder()
        await bus.consume(spec.name, received[spec.name])
    keys = [
        "enforcement.created",
        "enforcement",
        "enforcement.a.b",
        "execution.requested",
        "execution.status.changed",
        "enforcements.created",
    ]
    sent = {key: enforcement(n) for n, key in enumerate(keys)}

    for key, envelope in sent.items():
        await bus.publish(EXECUTIONS, key, envelope)
    await bus.join(timeout=5)

    def keys_seen(queue: str) -> set[str]:
        by_id = {envelope.message_id: key for key, envelope in sent.items()}
        return {by_id[message_id] for message_id in received[queue].ids}

    assert keys_seen(topology.ENFORCEMENTS_QUEUE.name) == {
        "enforcement.created",
        "enforcement",
        "enforcement.a.b",
    }
    assert keys_seen(topology.EXECUTION_REQUESTS_QUEUE.name) == {"execution.requested"}
    assert keys_seen("t.star") == {"execution.requested"}


async def test_fanout_delivers_to_every_bound_queue_whatever_the_key(bus: ContractBus) -> None:
    first = QueueSpec("t.fan.1", ((topology.NOTIFICATIONS_EXCHANGE, ""),))
    second = QueueSpec("t.fan.2", ((topology.NOTIFICATIONS_EXCHANGE, "unrelated.key"),))
    recorders = [Recorder(), Recorder()]
    for spec, recorder in zip((first, second), recorders, strict=True):
        await bus.declare_queue(spec)
        await bus.consume(spec.name, recorder)
    sent = event()

    await bus.publish(topology.NOTIFICATIONS_EXCHANGE, "notification.created", sent)

    for recorder in recorders:
        assert (await recorder.wait_for(1))[0].message_id == sent.message_id


async def test_a_message_nobody_is_bound_for_is_dropped(bus: ContractBus) -> None:
    await bus.declare_queue(topology.EXECUTOR_EVENTS_QUEUE)

    await bus.publish(topology.EVENTS_EXCHANGE, "nobody.listens", event())

    assert await bus.queue_depth(topology.EXECUTOR_EVENTS_QUEUE.name) == 0


async def test_unknown_queue_or_exchange_is_refused(bus: ContractBus) -> None:
    with pytest.raises(BusError):
        await bus.consume("no.such.queue", Recorder())
    with pytest.raises(BusError):
        await bus.publish("no.such.exchange", "event.created", event())


# --- competing consumers, prefetch, cancel, join --------------------------------------------


async def test_competing_consumers_share_work_and_handle_each_message_once(bus: ContractBus) -> None:
    spec = topology.ENFORCEMENTS_QUEUE
    await bus.declare_queue(spec)
    handled: dict[str, list[str]] = {"a": [], "b": []}

    def worker(name: str) -> Callable[[Envelope], Awaitable[None]]:
        async def handle(envelope: Envelope) -> None:
            await asyncio.sleep(0.02)
            handled[name].append(envelope.message_id)

        return handle

    await bus.consume(spec.name, worker("a"), prefetch=1)
    await bus.consume(spec.name, worker("b"), prefetch=1)
    sent = [enforcement(n) for n in range(10)]

    for envelope in sent:
        await bus.publish(EXECUTIONS, "enforcement.created", envelope)
    await bus.join(timeout=5)

    all_handled = handled["a"] + handled["b"]
    assert sorted(all_handled) == sorted(envelope.message_id for envelope in sent)
    assert handled["a"] and handled["b"]


async def test_prefetch_bounds_handlers_in_flight(bus: ContractBus) -> None:
    spec = topology.ENFORCEMENTS_QUEUE
    await bus.declare_queue(spec)
    gate = asyncio.Event()
    in_flight = 0
    peak = 0
    done = 0

    async def handle(envelope: Envelope) -> None:
        nonlocal in_flight, peak, done
        in_flight += 1
        peak = max(peak, in_flight)
        await gate.wait()
        in_flight -= 1
        done += 1

    await bus.consume(spec.name, handle, prefetch=3)
    for n in range(8):
        await bus.publish(EXECUTIONS, "enforcement.created", enforcement(n))

    async def three_running() -> bool:
        return in_flight == 3

    await eventually(three_running)
    await asyncio.sleep(0.2)  # give an over-eager bus the chance to start a fourth handler
    assert peak == 3
    gate.set()
    await bus.join(timeout=5)
    assert done == 8


async def test_cancelled_consumer_takes_no_more_messages(bus: ContractBus) -> None:
    spec = topology.EXECUTOR_EVENTS_QUEUE
    await bus.declare_queue(spec)
    recorder = Recorder()
    consumer = await bus.consume(spec.name, recorder)

    await consumer.cancel()
    await bus.publish(*routing_for(MessageType.EVENT_CREATED), event())

    await eventually(lambda: _depth_is(bus, spec.name, 1))
    assert recorder.seen == []


async def test_join_waits_until_queues_are_drained(bus: ContractBus) -> None:
    spec = topology.EXECUTOR_EVENTS_QUEUE
    await bus.declare_queue(spec)
    handled: list[str] = []

    async def slow(envelope: Envelope) -> None:
        await asyncio.sleep(0.03)
        handled.append(envelope.message_id)

    await bus.consume(spec.name, slow, prefetch=1)
    for n in range(5):
        await bus.publish(*routing_for(MessageType.EVENT_CREATED), event(n))

    await bus.join(timeout=5)

    assert len(handled) == 5


async def test_join_times_out_while_a_handler_is_stuck(bus: ContractBus) -> None:
    spec = topology.EXECUTOR_EVENTS_QUEUE
    await bus.declare_queue(spec)
    gate = asyncio.Event()

    async def stuck(envelope: Envelope) -> None:
        await gate.wait()

    await bus.consume(spec.name, stuck)
    await bus.publish(*routing_for(MessageType.EVENT_CREATED), event())

    with pytest.raises(TimeoutError):
        await bus.join(timeout=0.3)
    gate.set()
    await bus.join(timeout=5)


# --- failures: retry and dead letters -------------------------------------------------------


async def _depth_is(bus: ContractBus, queue: str, expected: int) -> bool:
    return await bus.queue_depth(queue) == expected


async def test_handler_failure_dead_letters_the_original_message(bus: ContractBus) -> None:
    spec = topology.EXECUTOR_EVENTS_QUEUE
    await bus.declare_queue(spec)
    dead = Recorder()
    await bus.consume(DLQ, dead)

    async def broken(envelope: Envelope) -> None:
        raise RuntimeError("rule lookup failed")

    await bus.consume(spec.name, broken)
    sent = event()

    await bus.publish(*routing_for(MessageType.EVENT_CREATED), sent)

    [dead_letter] = await dead.wait_for(1)
    assert dead_letter == sent


async def test_retryable_failure_is_redelivered_not_dead_lettered(bus: ContractBus) -> None:
    spec = topology.EXECUTOR_EVENTS_QUEUE
    await bus.declare_queue(spec)
    attempts: list[str] = []

    async def flaky(envelope: Envelope) -> None:
        attempts.append(envelope.message_id)
        if len(attempts) == 1:
            raise Retryable("database pool exhausted")

    await bus.consume(spec.name, flaky)
    sent = event()

    await bus.publish(*routing_for(MessageType.EVENT_CREATED), sent)
    await bus.join(timeout=5)

    assert attempts == [sent.message_id, sent.message_id]
    assert await bus.queue_depth(DLQ) == 0


@pytest.mark.parametrize("body", [b"{not json", b'{"message_type": "NoSuchType", "payload": {}}'])
async def test_invalid_body_is_dead_lettered_without_calling_the_handler(
    bus: ContractBus, body: bytes
) -> None:
    spec = topology.EXECUTOR_EVENTS_QUEUE
    await bus.declare_queue(spec)
    recorder = Recorder()
    await bus.consume(spec.name, recorder)

    await bus.publish_raw(topology.EVENTS_EXCHANGE, "event.created", body)

    await eventually(lambda: _depth_is(bus, DLQ, 1))
    assert recorder.seen == []


async def test_failure_on_a_queue_without_dead_lettering_drops_the_message(bus: ContractBus) -> None:
    spec = topology.RULES_LIFECYCLE_QUEUE
    await bus.declare_queue(spec)
    attempts = 0

    async def broken(envelope: Envelope) -> None:
        nonlocal attempts
        attempts += 1
        raise RuntimeError("boom")

    await bus.consume(spec.name, broken)
    await bus.publish(topology.EVENTS_EXCHANGE, "rule.created", event())
    await bus.join(timeout=5)
    await asyncio.sleep(0.1)

    assert attempts == 1
    assert await bus.queue_depth(DLQ) == 0
    assert await bus.queue_depth(spec.name) == 0


async def test_expired_messages_are_dead_lettered(bus: ContractBus) -> None:
    spec = QueueSpec("t.ttl", ((EXECUTIONS, "execution.dispatch.worker.9"),), dead_letter=True, ttl_ms=150)
    await bus.declare_queue(spec)
    dead = Recorder()
    await bus.consume(DLQ, dead)
    sent = event()
    started = time.monotonic()

    await bus.publish(*dispatch_routing(9), sent)

    [dead_letter] = await dead.wait_for(1)
    assert time.monotonic() - started >= 0.1
    assert dead_letter.message_id == sent.message_id
    assert await bus.queue_depth(spec.name) == 0


# --- envelope, routing table, factory (implementation-independent) --------------------------


def test_envelope_json_round_trip_and_defaults() -> None:
    envelope = event()

    parsed = Envelope.from_json(envelope.to_json())

    assert parsed == envelope
    assert envelope.correlation_id == envelope.message_id
    assert envelope.version == "1.0"
    assert envelope.headers.retry_count == 0
    assert envelope.to_json().decode().count('"timestamp":"') == 1
    assert envelope.model_dump(mode="json")["timestamp"].endswith("Z")


def test_envelope_without_version_or_correlation_gets_defaults() -> None:
    body = b'{"message_id": "0b3e6c2e-2f55-4d7e-9f39-0a9b8c7d6e5f", "message_type": "RuleDisabled",'
    body += b' "timestamp": "2025-01-02T03:04:05Z", "headers": {"x": 1}, "payload": {}}'

    envelope = Envelope.from_json(body)

    assert envelope.version == "1.0"
    assert envelope.correlation_id == envelope.message_id
    assert envelope.timestamp == datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert envelope.headers.model_extra == {"x": 1}


def test_make_envelope_rejects_a_payload_that_does_not_fit_the_type() -> None:
    # The timeout monitor once sent ExecutionCompleted without action fields (docs/development.md).
    with pytest.raises(pydantic.ValidationError):
        make_envelope(
            MessageType.EXECUTION_COMPLETED,
            {"execution_id": 1, "status": "failed"},
            source_service="executor",
        )


def test_execution_completed_status_is_lower_case() -> None:
    envelope = make_envelope(
        MessageType.EXECUTION_COMPLETED,
        {
            "execution_id": 1,
            "action_id": 2,
            "action_ref": "core.echo",
            "status": "Completed",
            "completed_at": "2025-01-01T00:00:00Z",
        },
        source_service="worker",
    )

    assert envelope.payload["status"] == "completed"
    assert envelope.payload_as(ExecutionCompleted).status == "completed"


def test_routing_table_matches_the_topology() -> None:
    assert routing_for(MessageType.EVENT_CREATED) == ("attune.events", "event.created")
    assert routing_for(MessageType.EXECUTION_STATUS_CHANGED) == (
        "attune.executions",
        "execution.status.changed",
    )
    assert routing_for(MessageType.PACK_REGISTERED) == ("attune.events", "pack.registered")
    assert routing_for(MessageType.NOTIFICATION_CREATED)[0] == "attune.notifications"
    assert dispatch_routing(4) == ("attune.executions", "execution.dispatch.worker.4")
    assert topology.worker_execution_queue(4).ttl_ms == 300_000
    assert "attune.events.queue" not in {spec.name for spec in topology.NAMED_QUEUES}


@pytest.mark.parametrize(
    ("pattern", "key", "matches"),
    [
        ("enforcement.#", "enforcement", True),
        ("#", "", True),
        ("a.*.c", "a.b.c", True),
        ("a.*.c", "a.c", False),
        ("a.#.c", "a.c", True),
        ("a.#.c", "a.x.y.c", True),
        ("a.#.c", "a.x.y.d", False),
        ("#.c", "c", True),
    ],
)
def test_topic_matching(pattern: str, key: str, matches: bool) -> None:
    assert topology.topic_matches(pattern, key) is matches


def test_factory_picks_the_implementation_by_scheme() -> None:
    assert isinstance(create_bus("memory://"), MemoryBus)
    assert isinstance(create_bus("amqp://guest:guest@localhost:5672/%2f"), RabbitMQBus)
    with pytest.raises(ConfigError, match=r"message_queue\.url"):
        create_bus("redis://localhost")


async def test_memory_publish_to_handler_hop_is_well_under_a_millisecond() -> None:
    bus = MemoryBus()
    await bus.start()
    await bus.declare_queue(topology.EXECUTOR_EVENTS_QUEUE)
    recorder = Recorder()
    await bus.consume(topology.EXECUTOR_EVENTS_QUEUE.name, recorder, prefetch=1)
    envelope = event()
    hops = 500

    started = time.perf_counter()
    for _ in range(hops):
        await bus.publish(*routing_for(MessageType.EVENT_CREATED), envelope)
        await bus.join()
    elapsed = time.perf_counter() - started

    await bus.close()
    assert len(recorder.seen) == hops
    assert elapsed / hops < 0.001
