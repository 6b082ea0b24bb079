"""The core timers (docs/sensors.md): schedules, payloads and the firing loop.

Everything here is pure scheduling logic over the :class:`~attune.clock.Clock` port (the
runtime's clock in the service), so the tests drive it with a fake clock (docs/development.md
"Time in tests"). A schedule answers one question — "when is the first firing strictly after
``t``?" — and the loop (:func:`run_timer`) always asks it from the previous *scheduled* time,
never from the moment a firing finished, so slow firings do not make an interval timer drift.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from attune.clock import Clock

log = logging.getLogger(__name__)

INTERVAL_TRIGGER = "core.intervaltimer"
CRON_TRIGGER = "core.crontimer"
DATETIME_TRIGGER = "core.datetimetimer"
#: The trigger refs the built-in timers serve.
TIMER_TRIGGERS = (INTERVAL_TRIGGER, CRON_TRIGGER, DATETIME_TRIGGER)
#: Every timer event names this sensor as its source (the built-in timers replace its process).
TIMER_SENSOR_REF = "core.interval_timer_sensor"

UNIT_SECONDS = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400}


class TimerConfigError(ValueError):
    """A rule's ``trigger_params`` cannot drive a timer (the rule then gets no timer)."""


def rfc3339(moment: datetime) -> str:
    """``moment`` in UTC as RFC 3339 with millisecond precision and a ``Z`` suffix."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _zone(name: Any) -> tuple[tzinfo, str]:
    """The zone named ``name`` if it is a valid IANA name, else UTC (the spec's behaviour)."""
    if isinstance(name, str) and name.strip() and name.strip().upper() != "UTC":
        try:
            return ZoneInfo(name.strip()), name.strip()
        except (ZoneInfoNotFoundError, ValueError):
            log.warning("unknown timezone %r; the timer uses UTC", name)
    return UTC, "UTC"


class Schedule(Protocol):
    """When a timer fires and what each firing carries."""

    def next_after(self, moment: datetime) -> datetime | None:
        """The first firing strictly after ``moment``, or None when the timer is finished."""
        ...

    def payload(self, scheduled: datetime, fired: datetime, count: int) -> dict[str, Any]:
        """The event payload of firing number ``count`` (from 1), scheduled for ``scheduled``."""
        ...


@dataclass(frozen=True)
class IntervalSchedule:
    """Every ``interval_seconds`` after ``start``; the first firing is one interval after it.

    Firing *k* is at ``start + k × interval`` exactly, so delays never accumulate.
    """

    interval_seconds: float
    start: datetime

    def next_after(self, moment: datetime) -> datetime:
        elapsed = (moment - self.start).total_seconds()
        k = max(1, math.floor(elapsed / self.interval_seconds) + 1)
        candidate = self.start + timedelta(seconds=k * self.interval_seconds)
        # Float rounding can land exactly on ``moment``; the contract is "strictly after".
        while candidate <= moment:
            k += 1
            candidate = self.start + timedelta(seconds=k * self.interval_seconds)
        return candidate

    def payload(self, scheduled: datetime, fired: datetime, count: int) -> dict[str, Any]:
        seconds: int | float = self.interval_seconds
        if float(seconds).is_integer():
            seconds = int(seconds)
        return {
            "type": "interval",
            "interval_seconds": seconds,
            "fired_at": rfc3339(fired),
            "execution_count": count,
            "sensor_ref": TIMER_SENSOR_REF,
        }


@dataclass(frozen=True)
class CronSchedule:
    """A 6-field cron expression (sec min hour dom mon dow), evaluated in ``zone``."""

    expression: str
    zone: tzinfo
    zone_name: str

    def next_after(self, moment: datetime) -> datetime:
        local = moment.astimezone(self.zone)
        nxt: datetime = croniter(self.expression, local, second_at_beginning=True).get_next(datetime)
        return nxt.astimezone(UTC)

    def payload(self, scheduled: datetime, fired: datetime, count: int) -> dict[str, Any]:
        try:
            next_fire_at = rfc3339(self.next_after(scheduled))
        except (ValueError, KeyError):
            next_fire_at = "unknown"
        return {
            "type": "cron",
            "fired_at": rfc3339(fired),
            "scheduled_at": rfc3339(scheduled),
            "expression": self.expression,
            "timezone": self.zone_name,
            "next_fire_at": next_fire_at,
            "execution_count": count,
            "sensor_ref": TIMER_SENSOR_REF,
        }


@dataclass(frozen=True)
class OneShotSchedule:
    """Once, at ``fire_at``; afterwards the timer is finished."""

    fire_at: datetime
    zone_name: str

    def next_after(self, moment: datetime) -> datetime | None:
        return self.fire_at if self.fire_at > moment else None

    def payload(self, scheduled: datetime, fired: datetime, count: int) -> dict[str, Any]:
        delay_ms = max(0, round((fired - self.fire_at).total_seconds() * 1000))
        return {
            "type": "one_shot",
            "fire_at": rfc3339(self.fire_at),
            "fired_at": rfc3339(fired),
            "timezone": self.zone_name,
            "delay_ms": delay_ms,
            "sensor_ref": TIMER_SENSOR_REF,
        }


def interval_seconds(params: Mapping[str, Any]) -> float:
    """``interval × unit`` in seconds; > 0 or :class:`TimerConfigError`."""
    interval = params.get("interval")
    if isinstance(interval, bool) or not isinstance(interval, int | float):
        raise TimerConfigError("interval must be a number")
    unit = params.get("unit", "seconds")
    if unit is None:
        unit = "seconds"
    if unit not in UNIT_SECONDS:
        raise TimerConfigError(f"unit must be one of {', '.join(UNIT_SECONDS)}, got {unit!r}")
    seconds = float(interval) * UNIT_SECONDS[unit]
    if not math.isfinite(seconds) or seconds <= 0:
        raise TimerConfigError("interval × unit must be greater than 0")
    return seconds


def parse_fire_at(value: Any, zone: tzinfo) -> datetime:
    """An RFC 3339 / ISO 8601 instant; a value without an offset is read in ``zone``."""
    if not isinstance(value, str) or not value.strip():
        raise TimerConfigError("fire_at must be an RFC 3339 date-time string")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise TimerConfigError(f"fire_at is not an RFC 3339 date-time: {value!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC)


def build_schedule(trigger_ref: str, params: Mapping[str, Any] | None, now: datetime) -> Schedule | None:
    """The schedule of a rule on ``trigger_ref`` started at ``now``.

    Returns None for a date-time timer whose moment has passed (no timer starts); raises
    :class:`TimerConfigError` for unusable parameters and unknown trigger refs.
    """
    params = params or {}
    if trigger_ref == INTERVAL_TRIGGER:
        return IntervalSchedule(interval_seconds(params), now)
    if trigger_ref == CRON_TRIGGER:
        expression = params.get("expression")
        if not isinstance(expression, str) or len(expression.split()) != 6:
            raise TimerConfigError("expression must be a cron expression with 6 fields")
        if not croniter.is_valid(expression, second_at_beginning=True):
            raise TimerConfigError(f"invalid cron expression: {expression!r}")
        zone, zone_name = _zone(params.get("timezone"))
        return CronSchedule(expression.strip(), zone, zone_name)
    if trigger_ref == DATETIME_TRIGGER:
        zone, zone_name = _zone(params.get("timezone"))
        fire_at = parse_fire_at(params.get("fire_at"), zone)
        if fire_at <= now:
            return None
        return OneShotSchedule(fire_at, zone_name)
    raise TimerConfigError(f"'{trigger_ref}' is not a timer trigger")


Fire = Callable[[dict[str, Any]], Awaitable[None]]


async def run_timer(schedule: Schedule, fire: Fire, clock: Clock, *, start: datetime) -> int:
    """Fire ``schedule`` until it is finished (or the task is cancelled); return the firings.

    Each next firing is computed from the previous scheduled time — or from now when firings
    were missed (the process was suspended, a firing took longer than the interval), so missed
    slots are skipped rather than replayed in a burst. A failing ``fire`` is logged and the
    timer keeps running.
    """
    count = 0
    scheduled = schedule.next_after(start)
    while scheduled is not None:
        # Sleep in a loop: a sleep may end a hair early, and a firing must never come early.
        while (remaining := (scheduled - clock.now()).total_seconds()) > 0:
            await clock.sleep(remaining)
        fired = clock.now()
        count += 1
        try:
            await fire(schedule.payload(scheduled, fired, count))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("timer firing %d failed; the timer keeps running", count)
        scheduled = schedule.next_after(max(scheduled, clock.now()))
    return count
