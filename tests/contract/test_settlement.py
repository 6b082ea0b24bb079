"""Outbox settlement: a row is gone only once its message can no longer be lost.

On a durable bus (RabbitMQ) that is when the broker has confirmed the publish; on the memory bus
of the embedded deployment it is when every consumer of the message has returned (its
transaction committed) — so a crash in between re-sends the message on the next start
(docs/operations.md, "Guarantees").
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import sqlalchemy as sa

from attune.bus.memory import MemoryBus
from attune.bus.relay import OutboxRelay
from attune.db import models
from attune.db.database import Database
from attune.db.outbox import enqueue
from attune.messaging import topology
from attune.messaging.messages import Envelope, MessageType
from attune.messaging.topology import EVENTS_EXCHANGE, QueueSpec
from attune.settings import Settings
from attune.testing.clock import FakeClock
from tests.contract.conftest import GRACE, ContractBus
from tests.integration.background import BackgroundLoop, running


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    database = Database(settings.database.url)
    async with database.transaction() as session:
        await session.execute(sa.delete(models.OutboxMessage))
    yield database
    await database.dispose()


async def _rows(db: Database) -> int:
    async with db.session() as session:
        count = await session.scalar(sa.select(sa.func.count()).select_from(models.OutboxMessage))
    return int(count or 0)


async def _eventually(check: Callable[[], Awaitable[bool]], limit: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + limit
    while not await check() and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110 - polling state other tasks change
        await asyncio.sleep(0.02)


async def _stage(db: Database, event_id: int) -> None:
    async with db.transaction() as session:
        enqueue(
            session,
            MessageType.EVENT_CREATED,
            {"event_id": event_id, "trigger_ref": "core.x", "payload": {}},
            source_service="api",
        )


async def _delete_rounds(clock: FakeClock, delay: float, rounds: int = 6) -> None:
    """Let ``rounds`` delete delays pass on the relay's fake clock, each round done before the next."""
    for _ in range(rounds):
        await clock.sleeping(1)  # the relay waits on its clock
        clock.advance(delay)
    await clock.sleeping(1)


QUEUE = QueueSpec("settle.test", ((EVENTS_EXCHANGE, "event.created"),), dead_letter=True)


async def test_a_row_outlives_its_message_until_it_cannot_be_lost(db: Database, bus: ContractBus) -> None:
    """While the consumer is busy the row stays on the memory bus, not on a durable broker."""
    release = asyncio.Event()
    seen: list[int] = []

    async def handler(envelope: Envelope) -> None:
        seen.append(envelope.payload["event_id"])
        await release.wait()

    await bus.declare_queue(QUEUE)
    await bus.consume(QUEUE.name, handler)
    clock = FakeClock()
    relay = OutboxRelay(db, bus, delete_delay=0.05, clock=clock)
    async with running(relay.run):
        await _stage(db, 1)

        async def delivered() -> bool:
            return seen == [1]

        await _eventually(delivered)
        assert seen == [1]
        await _delete_rounds(clock, 0.05)
        assert await _rows(db) == (0 if bus.durable else 1)
        release.set()

        async def gone() -> bool:
            clock.advance(0.05)  # a delete round after each look
            return await _rows(db) == 0

        await _eventually(gone)
        assert await _rows(db) == 0
        assert seen == [1], "nothing was sent twice"


async def test_a_message_whose_consumer_never_finished_is_sent_again_on_start(db: Database) -> None:
    """A crash of the embedded process (bus and relay gone mid-handler) loses nothing."""
    first = MemoryBus(shutdown_grace=GRACE)
    await first.start()
    await first.declare_queue(QUEUE)
    stuck = asyncio.Event()

    async def hangs(envelope: Envelope) -> None:
        stuck.set()
        await asyncio.Event().wait()

    await first.consume(QUEUE.name, hangs)
    relay = BackgroundLoop()
    relay.start_loop(OutboxRelay(db, first).run)
    await _stage(db, 7)
    await asyncio.wait_for(stuck.wait(), 5)
    # The crash: the relay never gets to finish, the process memory (the bus) is gone.
    await relay.close()
    await first.close()
    assert await _rows(db) == 1

    second = MemoryBus(shutdown_grace=GRACE)
    await second.start()
    await second.declare_queue(QUEUE)
    received: list[int] = []

    async def records(envelope: Envelope) -> None:
        received.append(envelope.payload["event_id"])

    await second.consume(QUEUE.name, records)
    async with running(OutboxRelay(db, second, poll_interval=0.1, delete_delay=0.05).run):

        async def done() -> bool:
            return received == [7] and await _rows(db) == 0

        await _eventually(done)
    assert received == [7]
    assert await _rows(db) == 0
    await second.close()


async def test_a_message_handled_before_the_crash_is_not_lost_either_way(db: Database) -> None:
    """Settled but not yet deleted: the next start sends it again (at-least-once)."""
    bus = MemoryBus(shutdown_grace=GRACE)
    await bus.start()
    await bus.declare_queue(QUEUE)
    received: list[int] = []

    async def records(envelope: Envelope) -> None:
        received.append(envelope.payload["event_id"])

    await bus.consume(QUEUE.name, records)
    relay = BackgroundLoop()
    relay.start_loop(OutboxRelay(db, bus, delete_delay=60.0, orphan_age=1000.0).run)
    await _stage(db, 3)

    async def handled() -> bool:
        return received == [3]

    await _eventually(handled)
    await relay.close()  # the crash
    assert await _rows(db) == 1
    async with running(OutboxRelay(db, bus, poll_interval=0.1, delete_delay=0.05).run):

        async def again() -> bool:
            return received == [3, 3] and await _rows(db) == 0

        await _eventually(again)
    assert received == [3, 3]
    await bus.close()


async def test_a_dead_lettered_message_is_settled_by_the_dead_letter_consumer(db: Database) -> None:
    bus = MemoryBus(shutdown_grace=GRACE)
    await bus.start()
    await bus.declare_queue(QUEUE)
    release = asyncio.Event()
    dead: list[int] = []

    async def rejects(envelope: Envelope) -> None:
        raise ValueError("bad message")

    async def dead_letters(envelope: Envelope) -> None:
        await release.wait()
        dead.append(envelope.payload["event_id"])

    await bus.consume(QUEUE.name, rejects)
    await bus.consume(topology.DLX_QUEUE.name, dead_letters)
    clock = FakeClock()
    async with running(OutboxRelay(db, bus, delete_delay=0.05, clock=clock).run):
        await _stage(db, 5)
        await _delete_rounds(clock, 0.05)
        assert await _rows(db) == 1, "the dead-letter consumer has not handled it yet"
        release.set()

        async def gone() -> bool:
            clock.advance(0.05)  # a delete round after each look
            return dead == [5] and await _rows(db) == 0

        await _eventually(gone)
    assert dead == [5]
    assert await _rows(db) == 0
    await bus.close()


async def test_a_message_routed_nowhere_leaves_no_row(db: Database) -> None:
    bus = MemoryBus(shutdown_grace=GRACE)
    await bus.start()
    async with running(OutboxRelay(db, bus, delete_delay=0.05).run):
        await _stage(db, 8)

        async def gone() -> bool:
            return await _rows(db) == 0

        await _eventually(gone)
    assert await _rows(db) == 0
    await bus.close()


async def test_a_dispatch_resent_on_start_waits_for_its_worker(db: Database) -> None:
    """Re-driven before the restarted worker declared its queue, the dispatch is not dropped."""
    async with db.transaction() as session:
        enqueue(
            session,
            MessageType.EXECUTION_REQUESTED,
            {"execution_id": 11, "worker_id": 4, "action_ref": "core.noop", "config": {}},
            source_service="executor",
            routing=(topology.EXECUTIONS_EXCHANGE, topology.worker_dispatch_key(4)),
        )
    bus = MemoryBus(shutdown_grace=GRACE)
    await bus.start()
    async with running(OutboxRelay(db, bus, poll_interval=0.05).run):

        async def queued() -> bool:
            with contextlib.suppress(Exception):
                return await bus.queue_depth(topology.worker_execution_queue(4).name) == 1
            return False

        await _eventually(queued)
        received: list[int] = []

        async def worker(envelope: Envelope) -> None:
            received.append(envelope.payload["execution_id"])

        await bus.consume(topology.worker_execution_queue(4).name, worker)

        async def done() -> bool:
            return received == [11] and await _rows(db) == 0

        await _eventually(done)
    assert received == [11]
    await bus.close()
