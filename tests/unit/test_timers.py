"""Schedule math of the core timers (docs/sensors.md), driven by a fake clock that moves when the
timer sleeps."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from attune.sensor.timers import (
    CRON_TRIGGER,
    DATETIME_TRIGGER,
    INTERVAL_TRIGGER,
    TimerConfigError,
    build_schedule,
    run_timer,
)
from attune.testing.clock import FakeClock

T0 = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)


async def collect(
    trigger: str, params: dict[str, Any], firings: int, *, cost: float = 0.0
) -> tuple[list[datetime], list[dict[str, Any]]]:
    """Run a timer until it fired ``firings`` times; each firing takes ``cost`` seconds."""
    clock = FakeClock(T0, auto_advance=True)
    schedule = build_schedule(trigger, params, clock.now())
    assert schedule is not None
    times: list[datetime] = []
    payloads: list[dict[str, Any]] = []
    done = asyncio.Event()

    async def fire(payload: dict[str, Any]) -> None:
        times.append(clock.now())
        payloads.append(payload)
        clock.advance(cost)
        if len(times) == firings:
            done.set()
            await asyncio.sleep(3600)  # parks the timer; cancelled below

    task = asyncio.create_task(run_timer(schedule, fire, clock, start=clock.now()))
    await asyncio.wait_for(done.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    return times, payloads


@pytest.mark.parametrize(
    ("unit", "seconds"), [("seconds", 5), ("minutes", 300), ("hours", 18000), ("days", 432000), (None, 5)]
)
async def test_interval_units_first_firing_after_one_interval(unit: str | None, seconds: int) -> None:
    params: dict[str, Any] = {"interval": 5}
    if unit is not None:
        params["unit"] = unit
    times, payloads = await collect(INTERVAL_TRIGGER, params, 3)
    assert times == [T0 + timedelta(seconds=seconds * k) for k in (1, 2, 3)]
    assert [p["execution_count"] for p in payloads] == [1, 2, 3]
    assert payloads[0] == {
        "type": "interval",
        "interval_seconds": seconds,
        "fired_at": (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", ".000Z"),
        "execution_count": 1,
        "sensor_ref": "core.interval_timer_sensor",
    }


async def test_interval_does_not_drift_when_firings_take_time() -> None:
    # Each firing costs 0.3 s of a 1 s interval: the schedule stays on whole seconds.
    times, _ = await collect(INTERVAL_TRIGGER, {"interval": 1}, 10, cost=0.3)
    assert times == [T0 + timedelta(seconds=k) for k in range(1, 11)]


async def test_interval_skips_slots_missed_by_a_slow_firing() -> None:
    # A firing that takes 2.5 intervals does not cause a burst of catch-up firings.
    times, _ = await collect(INTERVAL_TRIGGER, {"interval": 1}, 3, cost=2.5)
    assert times == [T0 + timedelta(seconds=s) for s in (1, 4, 7)]


def test_interval_sub_second_slots_are_exact() -> None:
    schedule = build_schedule(INTERVAL_TRIGGER, {"interval": 0.1}, T0)
    assert schedule is not None
    slot = T0
    for _ in range(1000):
        slot = schedule.next_after(slot)  # type: ignore[assignment]
    # 1000 × 0.1 s computed from the start, not by repeated addition.
    assert slot == T0 + timedelta(seconds=100)


@pytest.mark.parametrize(
    "params",
    [{}, {"interval": 0}, {"interval": -1}, {"interval": "5"}, {"interval": 5, "unit": "weeks"}],
)
def test_interval_rejects_bad_params(params: dict[str, Any]) -> None:
    with pytest.raises(TimerConfigError):
        build_schedule(INTERVAL_TRIGGER, params, T0)


async def test_cron_with_seconds_field() -> None:
    times, payloads = await collect(CRON_TRIGGER, {"expression": "*/15 * * * * *"}, 3)
    assert times == [T0 + timedelta(seconds=s) for s in (15, 30, 45)]
    first = payloads[0]
    assert first["type"] == "cron"
    assert first["expression"] == "*/15 * * * * *"
    assert first["timezone"] == "UTC"
    assert first["fired_at"] == first["scheduled_at"] == "2030-01-01T12:00:15.000Z"
    assert first["next_fire_at"] == "2030-01-01T12:00:30.000Z"
    assert first["execution_count"] == 1


def test_cron_every_second_and_weekday_names() -> None:
    every = build_schedule(CRON_TRIGGER, {"expression": "* * * * * *"}, T0)
    assert every is not None and every.next_after(T0) == T0 + timedelta(seconds=1)
    # 2030-01-01 is a Tuesday; the next Monday 09:00:30 is 2030-01-07.
    weekly = build_schedule(CRON_TRIGGER, {"expression": "30 0 9 ? * MON"}, T0)
    assert weekly is not None
    assert weekly.next_after(T0) == datetime(2030, 1, 7, 9, 0, 30, tzinfo=UTC)


def test_cron_honours_a_valid_timezone_and_falls_back_to_utc() -> None:
    paris = build_schedule(CRON_TRIGGER, {"expression": "0 0 13 * * *", "timezone": "Europe/Paris"}, T0)
    assert paris is not None
    # 13:00 in Paris (UTC+1 in January) is 12:00 UTC — already passed at T0, so the next day.
    assert paris.next_after(T0) == datetime(2030, 1, 2, 12, 0, tzinfo=UTC)
    assert paris.payload(T0, T0, 1)["timezone"] == "Europe/Paris"
    bogus = build_schedule(CRON_TRIGGER, {"expression": "0 0 13 * * *", "timezone": "Mars/Olympus"}, T0)
    assert bogus is not None
    assert bogus.next_after(T0) == datetime(2030, 1, 1, 13, 0, tzinfo=UTC)
    assert bogus.payload(T0, T0, 1)["timezone"] == "UTC"


@pytest.mark.parametrize("expression", ["* * * * *", "61 * * * * *", "not a cron", ""])
def test_cron_rejects_bad_expressions(expression: str) -> None:
    with pytest.raises(TimerConfigError):
        build_schedule(CRON_TRIGGER, {"expression": expression}, T0)


async def test_datetime_fires_exactly_once() -> None:
    fire_at = T0 + timedelta(seconds=90)
    clock = FakeClock(T0, auto_advance=True)
    schedule = build_schedule(DATETIME_TRIGGER, {"fire_at": "2030-01-01T12:01:30Z"}, T0)
    assert schedule is not None
    payloads: list[dict[str, Any]] = []

    async def fire(payload: dict[str, Any]) -> None:
        payloads.append(payload)

    count = await asyncio.wait_for(run_timer(schedule, fire, clock, start=T0), 5)
    assert count == 1
    assert clock.now() == fire_at
    assert payloads == [
        {
            "type": "one_shot",
            "fire_at": "2030-01-01T12:01:30.000Z",
            "fired_at": "2030-01-01T12:01:30.000Z",
            "timezone": "UTC",
            "delay_ms": 0,
            "sensor_ref": "core.interval_timer_sensor",
        }
    ]


def test_datetime_in_the_past_gives_no_timer() -> None:
    assert build_schedule(DATETIME_TRIGGER, {"fire_at": "2030-01-01T11:59:59Z"}, T0) is None
    assert build_schedule(DATETIME_TRIGGER, {"fire_at": "2030-01-01T12:00:00Z"}, T0) is None


def test_datetime_offsets_and_naive_times() -> None:
    with_offset = build_schedule(DATETIME_TRIGGER, {"fire_at": "2030-01-01T14:00:00+01:00"}, T0)
    assert with_offset is not None and with_offset.next_after(T0) == datetime(2030, 1, 1, 13, tzinfo=UTC)
    naive_paris = build_schedule(
        DATETIME_TRIGGER, {"fire_at": "2030-01-01T14:00:00", "timezone": "Europe/Paris"}, T0
    )
    assert naive_paris is not None and naive_paris.next_after(T0) == datetime(2030, 1, 1, 13, tzinfo=UTC)
    with pytest.raises(TimerConfigError):
        build_schedule(DATETIME_TRIGGER, {"fire_at": "tomorrow"}, T0)


async def test_a_failing_firing_keeps_the_timer_running() -> None:
    clock = FakeClock(T0, auto_advance=True)
    schedule = build_schedule(INTERVAL_TRIGGER, {"interval": 1}, T0)
    assert schedule is not None
    calls = 0
    done = asyncio.Event()

    async def fire(payload: dict[str, Any]) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            done.set()
            await asyncio.sleep(3600)
        raise RuntimeError("database down")

    task = asyncio.create_task(run_timer(schedule, fire, clock, start=T0))
    await asyncio.wait_for(done.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert calls == 3
