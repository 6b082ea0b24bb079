"""Per-action FIFO concurrency slots (docs/operations.md) and their ``queue_stats`` mirror."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import sqlalchemy as sa

from attune.db import models
from attune.executor.slots import (
    CANCELLED,
    LIMIT_REACHED,
    QUEUE_FULL,
    QUEUE_TIMEOUT,
    PolicyRejected,
    QueueSnapshot,
    SlotManager,
    StatsWriter,
    persist_stats,
)
from attune.packs.register import register_pack
from attune.platform import Platform

A, B = 1, 2


async def settle() -> None:
    """Let every ready task run until it blocks again."""
    for _ in range(10):
        await asyncio.sleep(0)


async def queue_up(
    slots: SlotManager, action: int, limit: int | None, tickets: list[int], got: list[int]
) -> list[asyncio.Task[None]]:
    """Start one waiting acquire per ticket, in order; each records its ticket once it holds a slot."""

    async def one(ticket: int) -> None:
        await slots.acquire(action, limit, ticket)
        got.append(ticket)

    tasks = []
    for ticket in tickets:
        tasks.append(asyncio.create_task(one(ticket)))
        await settle()  # enqueue strictly in creation order
    return tasks


async def test_free_slot_is_taken_at_once() -> None:
    slots = SlotManager()
    await slots.acquire(A, 2, ticket=1)
    await slots.acquire(A, 2, ticket=2)
    snap = slots.snapshot(A)
    assert (snap.active_count, snap.queue_length, snap.max_concurrent, snap.total_enqueued) == (2, 0, 2, 2)
    assert snap.oldest_enqueued_at is None


async def test_waiters_get_slots_in_fifo_order() -> None:
    slots = SlotManager()
    await slots.acquire(A, 1, ticket=100)
    got: list[int] = []
    tasks = await queue_up(slots, A, 1, [101, 103, 105, 109], got)
    assert got == [] and slots.snapshot(A).queue_length == 4
    for expected in ([101], [101, 103], [101, 103, 105], [101, 103, 105, 109]):
        slots.release(A)
        await settle()
        assert got == expected
        assert slots.snapshot(A).active_count == 1
    await asyncio.gather(*tasks)
    snap = slots.snapshot(A)
    assert (snap.queue_length, snap.total_enqueued, snap.total_completed) == (0, 5, 4)


async def test_an_older_enforcement_that_arrives_late_is_served_first() -> None:
    """Events are handled concurrently, so enforcement 3 may reach the queue before enforcement 2:
    the queue stays in enforcement order. A manual run (negative ticket) keeps its place."""
    slots = SlotManager()
    await slots.acquire(A, 1, ticket=1)
    got: list[int] = []
    tasks = await queue_up(slots, A, 1, [3, 2, -7, 5, 4], got)
    for _ in range(5):
        slots.release(A)
        await settle()
    await asyncio.gather(*tasks)
    assert got == [2, 3, -7, 4, 5]


async def test_a_full_action_does_not_block_other_actions() -> None:
    slots = SlotManager()
    await slots.acquire(A, 1, ticket=1)
    waiting = asyncio.create_task(slots.acquire(A, 1, ticket=2))
    await settle()
    await asyncio.wait_for(slots.acquire(B, 1, ticket=3), timeout=1)
    assert not waiting.done()
    assert slots.snapshot(B).active_count == 1
    slots.release(A)
    await asyncio.wait_for(waiting, timeout=1)


async def test_unlimited_action_never_waits_but_is_counted() -> None:
    slots = SlotManager()
    for ticket in range(50):
        await asyncio.wait_for(slots.acquire(A, None, ticket), timeout=1)
    snap = slots.snapshot(A)
    assert (snap.active_count, snap.max_concurrent, snap.queue_length) == (50, 0, 0)


async def test_cancel_method_rejects_when_full() -> None:
    slots = SlotManager()
    await slots.acquire(A, 1, ticket=1, method="cancel")
    with pytest.raises(PolicyRejected) as caught:
        await slots.acquire(A, 1, ticket=2, method="cancel")
    assert caught.value.reason == LIMIT_REACHED
    assert str(caught.value).startswith("concurrency limit reached")
    assert slots.snapshot(A).queue_length == 0
    slots.release(A)
    await asyncio.wait_for(slots.acquire(A, 1, ticket=3, method="cancel"), timeout=1)


async def test_queue_full_rejects_the_newcomer() -> None:
    slots = SlotManager(max_queue_length=2)
    await slots.acquire(A, 1, ticket=1)
    got: list[int] = []
    tasks = await queue_up(slots, A, 1, [2, 3], got)
    with pytest.raises(PolicyRejected) as caught:
        await slots.acquire(A, 1, ticket=4)
    assert caught.value.reason == QUEUE_FULL
    assert slots.snapshot(A).queue_length == 2
    slots.release(A)
    slots.release(A)
    await asyncio.gather(*tasks)
    assert got == [2, 3]


async def test_wait_times_out_and_leaves_the_queue() -> None:
    slots = SlotManager(queue_timeout=0.05)
    await slots.acquire(A, 1, ticket=1)
    with pytest.raises(PolicyRejected) as caught:
        await slots.acquire(A, 1, ticket=2)
    assert caught.value.reason == QUEUE_TIMEOUT
    assert slots.snapshot(A).queue_length == 0
    # The slot freed later is not handed to the ticket that gave up.
    slots.release(A)
    assert slots.snapshot(A).active_count == 0


async def test_cancel_ticket_drops_it_and_the_next_waiter_moves_up() -> None:
    slots = SlotManager()
    await slots.acquire(A, 1, ticket=1)
    got: list[int] = []
    tasks = await queue_up(slots, A, 1, [2, 3], got)
    assert slots.cancel(2) is True
    assert slots.cancel(2) is False
    assert slots.cancel(999) is False
    results = await asyncio.gather(tasks[0], return_exceptions=True)
    assert isinstance(results[0], PolicyRejected) and results[0].reason == CANCELLED
    assert slots.snapshot(A).queue_length == 1
    slots.release(A)
    await asyncio.wait_for(tasks[1], timeout=1)
    assert got == [3]


async def test_cancelling_a_waiting_task_removes_its_ticket() -> None:
    slots = SlotManager()
    await slots.acquire(A, 1, ticket=1)
    waiting = asyncio.create_task(slots.acquire(A, 1, ticket=2))
    await settle()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert slots.snapshot(A).queue_length == 0
    slots.release(A)
    assert slots.snapshot(A).active_count == 0


async def test_release_never_goes_negative_and_ignores_unknown_actions() -> None:
    slots = SlotManager()
    await slots.acquire(A, 2, ticket=1)
    slots.release(A)
    slots.release(A)  # e.g. a manual run that took no slot
    snap = slots.snapshot(A)
    assert (snap.active_count, snap.total_completed) == (0, 2)
    slots.release(B)
    assert slots.snapshot(B) == QueueSnapshot(0, 0, 0, None, 0, 0)


async def test_raising_the_limit_admits_waiters_first() -> None:
    slots = SlotManager()
    await slots.acquire(A, 1, ticket=1)
    got: list[int] = []
    tasks = await queue_up(slots, A, 1, [2, 3], got)
    # The next acquire brings a higher limit: queued tickets are admitted before the newcomer.
    await slots.acquire(A, 4, ticket=4)
    await asyncio.gather(*tasks)
    assert got == [2, 3]
    assert slots.snapshot(A).active_count == 4


async def test_snapshot_reports_the_oldest_waiter_and_dirty_actions() -> None:
    slots = SlotManager()
    assert slots.dirty_actions() == set()
    await slots.acquire(A, 1, ticket=1)
    got: list[int] = []
    tasks = await queue_up(slots, A, 1, [2, 3], got)
    await slots.acquire(B, None, ticket=4)
    assert slots.dirty_actions() == {A, B}
    assert slots.dirty_actions() == set()
    snap = slots.snapshot(A)
    assert snap.queue_length == 2 and snap.oldest_enqueued_at is not None
    slots.release(A)
    await settle()
    assert slots.dirty_actions() == {A}
    later = slots.snapshot(A)
    assert later.oldest_enqueued_at is not None and later.oldest_enqueued_at >= snap.oldest_enqueued_at
    slots.release(A)
    await asyncio.gather(*tasks)
    assert slots.snapshot(A).oldest_enqueued_at is None


# -- queue_stats -------------------------------------------------------------------------------


async def make_actions(platform: Platform, tmp_path: Path) -> dict[str, int]:
    pack = tmp_path / "slotpack"
    (pack / "actions").mkdir(parents=True)
    (pack / "pack.yaml").write_text("ref: slotpack\nversion: 1.0.0\n")
    for name in ("one", "two"):
        (pack / "actions" / f"{name}.yaml").write_text(f"name: {name}\nentry_point: {name}.sh\n")
        (pack / "actions" / f"{name}.sh").write_text("true\n")
    await register_pack(platform, pack, skip_tests=True)
    async with platform.db.session() as session:
        rows = await session.execute(sa.select(models.Action.ref, models.Action.id))
        return {ref: id for ref, id in rows}


async def stats(platform: Platform) -> dict[int, models.QueueStats]:
    async with platform.db.session() as session:
        return {row.action_id: row for row in (await session.execute(sa.select(models.QueueStats))).scalars()}


async def test_persist_stats_inserts_then_replaces_counters(platform: Platform, tmp_path: Path) -> None:
    ids = await make_actions(platform, tmp_path)
    one, two = ids["slotpack.one"], ids["slotpack.two"]
    slots = SlotManager()
    await slots.acquire(one, 1, ticket=1)
    waiting = asyncio.create_task(slots.acquire(one, 1, ticket=2))
    await settle()
    await slots.acquire(two, None, ticket=3)
    async with platform.db.transaction() as session:
        await persist_stats(session, {a: slots.snapshot(a) for a in slots.dirty_actions()})
    first = await stats(platform)
    assert set(first) == {one, two}
    row = first[one]
    assert (row.queue_length, row.active_count, row.max_concurrent) == (1, 1, 1)
    assert (row.total_enqueued, row.total_completed) == (2, 0)
    assert row.oldest_enqueued_at is not None
    assert first[two].max_concurrent == 0

    slots.release(one)
    await waiting
    async with platform.db.transaction() as session:
        await persist_stats(session, {a: slots.snapshot(a) for a in slots.dirty_actions()})
    second = await stats(platform)
    assert set(second) == {one, two}
    row = second[one]
    assert (row.queue_length, row.active_count, row.total_completed, row.oldest_enqueued_at) == (
        0,
        1,
        1,
        None,
    )
    assert row.last_updated >= first[one].last_updated
    assert second[two].last_updated == first[two].last_updated  # not dirty, not rewritten


async def test_persist_stats_skips_actions_that_no_longer_exist(platform: Platform, tmp_path: Path) -> None:
    ids = await make_actions(platform, tmp_path)
    snapshot = QueueSnapshot(0, 1, 1, None, 1, 0)
    async with platform.db.transaction() as session:
        await persist_stats(session, {ids["slotpack.one"]: snapshot, 987654: snapshot})
    assert set(await stats(platform)) == {ids["slotpack.one"]}


async def test_stats_writer_gathers_changes_until_close(platform: Platform, tmp_path: Path) -> None:
    one = (await make_actions(platform, tmp_path))["slotpack.one"]
    slots = SlotManager()
    writer = StatsWriter(slots, platform.db, interval=3600)
    for ticket in range(5):
        await slots.acquire(one, None, ticket)
        writer.changed()
    slots.release(one)
    writer.changed()
    await settle()
    assert await stats(platform) == {}  # nothing written before the interval ends
    await writer.close()  # a clean stop writes what is pending
    row = (await stats(platform))[one]
    assert (row.active_count, row.total_enqueued, row.total_completed) == (4, 5, 1)


async def test_stats_writer_writes_each_interval_s_changes(platform: Platform, tmp_path: Path) -> None:
    one = (await make_actions(platform, tmp_path))["slotpack.one"]
    slots = SlotManager()
    writer = StatsWriter(slots, platform.db, interval=0.01)

    async def written(active: int) -> None:
        for _ in range(200):
            row = (await stats(platform)).get(one)
            if row is not None and row.active_count == active:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"active_count {active} never written")

    await slots.acquire(one, 2, ticket=1)
    writer.changed()
    await written(1)
    slots.release(one)
    writer.changed()
    await written(0)
    await writer.close()
