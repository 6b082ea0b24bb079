"""Outbox → bus relay, run over this pass's database and both buses.

Messages leave only after the transaction commits; a rolled-back transaction sends nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any, cast

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from attune.bus.base import Bus, BusError, Outgoing, PublishOutcome
from attune.bus.relay import OutboxRelay
from attune.db import models
from attune.db.database import Database
from attune.db.outbox import enqueue, outbox_row
from attune.messaging.messages import Envelope, MessageType
from attune.messaging.topology import EVENTS_EXCHANGE, QueueSpec
from attune.settings import Settings
from attune.testing.clock import FakeClock
from tests.contract.conftest import ContractBus
from tests.integration.background import running


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    database = Database(settings.database.url)
    async with database.transaction() as session:
        await session.execute(sa.delete(models.OutboxMessage))
    yield database
    await database.dispose()


async def _collect(bus: ContractBus) -> list[Envelope]:
    received: list[Envelope] = []

    async def handler(envelope: Envelope) -> None:
        received.append(envelope)

    await bus.declare_queue(QueueSpec("outbox.test", ((EVENTS_EXCHANGE, "event.created"),)))
    await bus.consume("outbox.test", handler)
    return received


async def _wait_for(received: list[Envelope], count: int, limit: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + limit
    while len(received) < count and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110 - polling a list filled by another task
        await asyncio.sleep(0.02)


async def test_committed_messages_are_relayed_in_order(db: Database, bus: ContractBus) -> None:
    received = await _collect(bus)
    relay = OutboxRelay(db, bus)
    async with running(relay.run):
        async with db.transaction() as session:
            for n in range(3):
                enqueue(
                    session,
                    MessageType.EVENT_CREATED,
                    {"event_id": n, "trigger_ref": "core.x", "payload": {}},
                    source_service="api",
                )
            await session.flush()
            await asyncio.sleep(0.2)
            assert received == [], "a message left before its transaction committed"
        await _wait_for(received, 3)
        assert [e.payload["event_id"] for e in received] == [0, 1, 2]
        assert all(e.message_type == "EventCreated" for e in received)
        await _wait_rows(db, 0)
        assert await _outbox_rows(db) == 0


async def _outbox_rows(db: Database) -> int:
    async with db.session() as session:
        return int(
            (await session.execute(sa.select(sa.func.count()).select_from(models.OutboxMessage))).scalar()
            or 0
        )


async def _wait_rows(db: Database, count: int, limit: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + limit
    while await _outbox_rows(db) != count and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110 - polling the table
        await asyncio.sleep(0.02)


async def test_published_rows_are_deleted_shortly_after_without_a_flush(
    db: Database, bus: ContractBus
) -> None:
    received = await _collect(bus)
    relay = OutboxRelay(db, bus, delete_delay=0.1)
    async with running(relay.run):
        await asyncio.sleep(0.1)  # past the relay's start-up scan
        for n in range(2):
            async with db.transaction() as session:
                enqueue(
                    session,
                    MessageType.EVENT_CREATED,
                    {"event_id": n, "trigger_ref": "core.x", "payload": {}},
                    source_service="api",
                )
        await _wait_for(received, 2)
        deadline = asyncio.get_running_loop().time() + 2.0
        while await _outbox_rows(db) and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110 - polling the table
            await asyncio.sleep(0.02)
        assert await _outbox_rows(db) == 0
        assert [e.payload["event_id"] for e in received] == [0, 1], "nothing is sent twice"


async def test_rolled_back_messages_are_never_sent(db: Database, bus: ContractBus) -> None:
    received = await _collect(bus)
    relay = OutboxRelay(db, bus)
    async with running(relay.run):
        with pytest.raises(RuntimeError):
            async with db.transaction() as session:
                enqueue(
                    session,
                    MessageType.EVENT_CREATED,
                    {"event_id": 9, "trigger_ref": "core.x", "payload": {}},
                    source_service="api",
                )
                await session.flush()
                raise RuntimeError("abort")
        await relay.flush()
        await asyncio.sleep(0.2)
        assert received == []


async def test_rows_written_while_the_relay_was_down_are_sent_on_start(
    db: Database, bus: ContractBus
) -> None:
    received = await _collect(bus)
    async with db.transaction() as session:
        enqueue(
            session,
            MessageType.EVENT_CREATED,
            {"event_id": 42, "trigger_ref": "core.x", "payload": {}},
            source_service="api",
        )
    relay = OutboxRelay(db, bus, poll_interval=0.1)
    async with running(relay.run):
        await _wait_for(received, 1)
        assert [e.payload["event_id"] for e in received] == [42]


async def test_published_rows_are_deleted_when_the_delete_delay_has_passed_on_the_relays_clock(
    db: Database, bus: ContractBus
) -> None:
    received = await _collect(bus)
    clock = FakeClock()
    relay = OutboxRelay(db, bus, poll_interval=60.0, orphan_age=1000.0, delete_delay=5.0, clock=clock)
    async with running(relay.run):
        await relay.flush()  # the start-up scan is done
        async with db.transaction() as session:
            enqueue(
                session,
                MessageType.EVENT_CREATED,
                {"event_id": 1, "trigger_ref": "core.x", "payload": {}},
                source_service="api",
            )
        await _wait_for(received, 1)
        async with asyncio.timeout(5):
            while clock.next_deadline() != 5.0:  # noqa: ASYNC110 - polling the relay's state
                await asyncio.sleep(0.01)  # published (and settled): it waits for the delete delay
        clock.advance(4.9)
        assert clock.pending == 1 and await _outbox_rows(db) == 1
        clock.advance(0.1)
        await _wait_rows(db, 0)
        assert await _outbox_rows(db) == 0
        assert [e.payload["event_id"] for e in received] == [1]


class _RefusingBus:
    """A durable bus over the test's bus whose broker refuses chosen events once each, and
    which records the batches it is handed."""

    durable = True

    def __init__(self, inner: ContractBus, refuse: set[int]) -> None:
        self._inner = inner
        self.refuse = refuse
        self.batches: list[list[int]] = []
        self.refused = asyncio.Event()

    async def publish(self, exchange: str, routing_key: str, envelope: Envelope) -> None:
        [outcome] = await self.publish_many([(exchange, routing_key, envelope)])
        if outcome is not None:
            raise outcome

    async def publish_many(self, messages: Sequence[Outgoing]) -> list[PublishOutcome]:
        self.batches.append([int(envelope.payload["event_id"]) for _, _, envelope in messages])
        outcomes: list[PublishOutcome] = []
        for exchange, routing_key, envelope in messages:
            if envelope.payload["event_id"] in self.refuse:
                self.refuse.discard(envelope.payload["event_id"])
                outcomes.append(BusError("refused by the broker"))
                self.refused.set()
                continue
            await self._inner.publish(exchange, routing_key, envelope)
            outcomes.append(None)
        return outcomes

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _stage_events(session: AsyncSession, numbers: Iterable[int]) -> None:
    for n in numbers:
        enqueue(
            session,
            MessageType.EVENT_CREATED,
            {"event_id": n, "trigger_ref": "core.x", "payload": {}},
            source_service="api",
        )


async def test_a_committed_batch_goes_out_together_and_a_refused_message_is_retried_before_newer_ones(
    db: Database, bus: ContractBus
) -> None:
    received = await _collect(bus)
    refusing = _RefusingBus(bus, refuse={1})
    clock = FakeClock()
    relay = OutboxRelay(
        db, cast(Bus, refusing), poll_interval=5.0, orphan_age=1000.0, delete_delay=0.0, clock=clock
    )
    async with running(relay.run):
        await relay.flush()  # the start-up scan is done
        async with db.transaction() as session:
            _stage_events(session, range(3))
        async with asyncio.timeout(5):
            await refusing.refused.wait()
        await _wait_for(received, 2)
        assert refusing.batches == [[0, 1, 2]], "the transaction's messages went out as one batch"
        async with db.transaction() as session:
            _stage_events(session, [3])  # committed while the refused one waits for its retry
        await clock.sleeping()
        clock.advance(5.0)
        await _wait_for(received, 4)
        assert [e.payload["event_id"] for e in received] == [0, 2, 1, 3]
        assert refusing.batches[1][0] == 1, "the refused message is retried ahead of newer ones"
        await _wait_rows(db, 0)
        assert await _outbox_rows(db) == 0


async def test_a_scan_deletes_only_the_rows_whose_message_the_broker_confirmed(
    db: Database, bus: ContractBus
) -> None:
    received = await _collect(bus)
    async with db.transaction() as session:
        _stage_events(session, range(3))
    refusing = _RefusingBus(bus, refuse={1})
    relay = OutboxRelay(db, cast(Bus, refusing))

    with pytest.raises(BusError):
        await relay.drain_once()

    await _wait_for(received, 2)
    assert [e.payload["event_id"] for e in received] == [0, 2]
    assert await _outbox_rows(db) == 1
    assert await relay.drain_once() == 1
    await _wait_for(received, 3)
    assert [e.payload["event_id"] for e in received] == [0, 2, 1]
    assert await _outbox_rows(db) == 0


# --------------------------------------------------------------------------- the orphan scan's pace


async def _drive_to(clock: FakeClock, interval: float) -> None:
    """Let the relay's timers run out until it sleeps ``interval`` (its backed-off scan pace)."""
    for _ in range(20):
        await clock.sleeping(1)
        wait = clock.next_deadline()
        if wait == interval:
            return
        assert wait is not None
        clock.advance(wait)
    raise AssertionError(f"the relay never slept {interval} s")


async def _orphan(db: Database, event_id: int) -> None:
    """An outbox row committed without this relay's fast path (another process wrote it)."""
    _, row = outbox_row(
        MessageType.EVENT_CREATED,
        {"event_id": event_id, "trigger_ref": "core.x", "payload": {}},
        source_service="api",
    )
    async with db.transaction() as session:
        session.add(models.OutboxMessage(**row))


async def test_an_idle_relay_backs_off_its_orphan_scans(
    db: Database, bus: ContractBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    relay = OutboxRelay(db, bus, poll_interval=1.0, max_poll_interval=8.0, orphan_age=1000.0, clock=clock)
    scans: list[float] = []
    real = relay._scan

    async def counted(created_before: Any) -> None:
        scans.append(clock.monotonic())
        await real(created_before)

    monkeypatch.setattr(relay, "_scan", counted)
    async with running(relay.run):
        await relay.flush()  # the start-up scan
        while True:
            await clock.sleeping(1)
            wait = clock.next_deadline()
            assert wait is not None and wait <= 8.0
            if clock.monotonic() + wait > 60.0:
                break
            clock.advance(wait)
        # The old pace scanned 60 times in these 60 s; backing off 2, 4, 8, 8, …: nine.
        assert scans == [0.0, 2.0, 6.0, 14.0, 22.0, 30.0, 38.0, 46.0, 54.0]


async def test_a_row_another_process_left_is_sent_within_the_backed_off_interval(
    db: Database, bus: ContractBus
) -> None:
    received = await _collect(bus)
    clock = FakeClock()
    # ``orphan_age`` 0: the row counts as an orphan at once (its age is read on the system clock).
    relay = OutboxRelay(db, bus, poll_interval=1.0, max_poll_interval=8.0, orphan_age=0.0, clock=clock)
    async with running(relay.run):
        await relay.flush()
        await _drive_to(clock, 8.0)
        await _orphan(db, 7)
        clock.advance(7.9)
        await clock.sleeping(1)
        assert received == []
        clock.advance(0.1)
        await _wait_for(received, 1)
        assert [e.payload["event_id"] for e in received] == [7]
        await _drive_to(clock, 1.0)  # a scan that found a row: the next one follows at the first pace


async def test_a_scan_whose_publish_failed_is_retried_at_the_first_interval(
    db: Database, bus: ContractBus
) -> None:
    received = await _collect(bus)
    refusing = _RefusingBus(bus, refuse={5})
    clock = FakeClock()
    relay = OutboxRelay(
        db, cast(Bus, refusing), poll_interval=1.0, max_poll_interval=8.0, orphan_age=0.0, clock=clock
    )
    async with running(relay.run):
        await relay.flush()
        await _drive_to(clock, 8.0)
        await _orphan(db, 5)
        await _orphan(db, 6)
        clock.advance(8.0)
        async with asyncio.timeout(5):
            await refusing.refused.wait()
        await _wait_for(received, 1)
        assert [e.payload["event_id"] for e in received] == [6]
        await clock.sleeping(1)
        assert clock.next_deadline() == 1.0, "the refused row is retried after poll_interval"
        clock.advance(1.0)
        await _wait_for(received, 2)
        assert [e.payload["event_id"] for e in received] == [6, 5]
        await _wait_rows(db, 0)
