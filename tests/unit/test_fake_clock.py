"""The fake clock tests drive time with: sleepers wake when time is advanced past them, in order."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from attune.clock import SystemClock
from attune.testing.clock import FakeClock

T0 = datetime(2031, 5, 1, 8, 0, 0, tzinfo=UTC)


async def test_time_moves_only_when_advanced() -> None:
    clock = FakeClock(T0)
    assert (clock.now(), clock.monotonic()) == (T0, 0.0)
    clock.advance(90.5)
    assert clock.now() == T0 + timedelta(seconds=90.5)
    assert clock.monotonic() == 90.5
    with pytest.raises(ValueError, match="back"):
        clock.advance(-1)
    with pytest.raises(ValueError, match="aware"):
        FakeClock(datetime(2031, 1, 1))


async def test_sleepers_wake_in_deadline_order_once_their_time_has_come() -> None:
    clock = FakeClock(T0)
    woke: list[str] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append(name)

    tasks = [
        asyncio.create_task(sleeper(name, seconds))
        for name, seconds in [("late", 10), ("early", 2), ("tie-1", 5), ("tie-2", 5)]
    ]
    await clock.sleeping(4)
    assert clock.next_deadline() == 2
    clock.advance(1.9)
    await asyncio.sleep(0)
    assert woke == []
    clock.advance(3.1)  # t = 5: the early one and both ties, ties in the order they slept
    await asyncio.gather(*tasks[1:])
    assert woke == ["early", "tie-1", "tie-2"]
    assert clock.pending == 1 and clock.next_deadline() == 5
    clock.advance(5)
    await tasks[0]
    assert woke[-1] == "late" and clock.pending == 0 and clock.next_deadline() is None
    assert clock.sleeps == [10, 2, 5, 5]


async def test_a_cancelled_sleeper_leaves_the_clock() -> None:
    clock = FakeClock(T0)
    task = asyncio.create_task(clock.sleep(60))
    await clock.sleeping(1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert clock.pending == 0
    clock.advance(120)  # nothing to wake, nothing breaks


async def test_wait_returns_when_the_event_is_set_or_the_time_has_passed() -> None:
    clock = FakeClock(T0)
    event = asyncio.Event()
    timed_out = asyncio.create_task(clock.wait(event, 30))
    await clock.sleeping(1)
    clock.advance(30)
    assert await timed_out is False
    assert clock.pending == 0

    signalled = asyncio.create_task(clock.wait(event, 30))
    await clock.sleeping(1)
    event.set()
    assert await signalled is True
    assert clock.pending == 0
    assert await clock.wait(event, 30) is True  # already set: no sleeping at all


async def test_auto_advance_runs_a_sleep_loop_through_hours_at_once() -> None:
    clock = FakeClock(T0, auto_advance=True)
    for _ in range(24):
        await clock.sleep(3600)
    assert clock.now() == T0 + timedelta(days=1)
    assert clock.pending == 0


async def test_sleeping_gives_up_in_real_time() -> None:
    with pytest.raises(TimeoutError):
        await FakeClock(T0).sleeping(1, within=0.05)


async def test_the_system_clock_is_aware_utc_and_waits_for_events() -> None:
    clock = SystemClock()
    assert clock.now().tzinfo is UTC
    before = clock.monotonic()
    await clock.sleep(0)
    assert clock.monotonic() >= before
    event = asyncio.Event()
    assert await clock.wait(event, 0.01) is False
    event.set()
    assert await clock.wait(event, 10) is True
