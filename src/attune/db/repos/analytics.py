"""Hourly analytics (docs/operations.md), computed on demand with portable GROUP BY queries.

PostgreSQL's original keeps TimescaleDB continuous aggregates; here each series is one query that
groups the source rows by their UTC hour. A bucket belongs to a window when
``since ≤ bucket ≤ until``, which on the source rows is ``ceil_hour(since) ≤ time <
floor_hour(until) + 1 h``: the filter stays on the raw, indexed timestamp column.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from attune.db.models import Enforcement, Event, ExecutionHistory, WorkerHistory
from attune.db.repos.history import dialect_of, has_changed_field
from attune.domain.enums import ExecutionStatus

HOUR = timedelta(hours=1)
MIN_HOURS, MAX_HOURS, DEFAULT_HOURS = 1, 8760, 24

#: The terminal statuses the failure rate is computed over.
FAILURE_RATE_STATUSES = (
    ExecutionStatus.COMPLETED.value,
    ExecutionStatus.FAILED.value,
    ExecutionStatus.TIMEOUT.value,
)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def floor_hour(value: datetime) -> datetime:
    """The start of the UTC hour ``value`` falls in."""
    return _utc(value).replace(minute=0, second=0, microsecond=0)


def ceil_hour(value: datetime) -> datetime:
    """The first UTC hour start at or after ``value``."""
    floor = floor_hour(value)
    return floor if floor == _utc(value) else floor + HOUR


@dataclass(frozen=True, slots=True)
class Window:
    """A query range; both ends are inclusive bounds on the hour buckets."""

    since: datetime
    until: datetime

    @property
    def start(self) -> datetime:
        """Inclusive lower bound on row timestamps (the first bucket in range)."""
        return ceil_hour(self.since)

    @property
    def end(self) -> datetime:
        """Exclusive upper bound on row timestamps (the end of the last bucket in range)."""
        return floor_hour(self.until) + HOUR


def resolve_window(
    since: datetime | None, until: datetime | None, hours: int | None, now: datetime
) -> Window:
    """The range of docs/api.md: ``hours`` (default 24, clamped to 1–8760) fills a missing end.

    ``since`` alone runs to now; ``until`` alone starts ``hours`` earlier; neither is the last
    ``hours``; both ignore ``hours``. Naive datetimes are taken as UTC.
    """
    span = timedelta(hours=max(MIN_HOURS, min(hours if hours is not None else DEFAULT_HOURS, MAX_HOURS)))
    end = _utc(until) if until is not None else _utc(now)
    start = _utc(since) if since is not None else end - span
    return Window(since=start, until=end)


@dataclass(frozen=True, slots=True)
class Point:
    """One value of a series: the hour start, an optional label (a status) and a count."""

    bucket: datetime
    label: str | None
    value: int


@dataclass(frozen=True, slots=True)
class FailureCounts:
    """Terminal transitions of a window, for the failure rate."""

    completed: int
    failed: int
    timeout: int

    @property
    def total(self) -> int:
        return self.completed + self.failed + self.timeout

    @property
    def rate_pct(self) -> float:
        """``(failed + timeout) / total × 100``, and 0 when nothing finished."""
        return (self.failed + self.timeout) / self.total * 100 if self.total else 0.0


# --------------------------------------------------------------------------- the dialect helper


def hour_bucket(column: Any, dialect: str) -> sa.ColumnElement[Any]:
    """The UTC hour start of a timestamp column, as a groupable SQL expression.

    * SQLite stores UTC timestamps as ISO text, so ``strftime`` cuts it to the hour and returns
      text in the same sortable format;
    * PostgreSQL's ``date_trunc`` on a ``timestamptz`` truncates in the *session* time zone, so the
      value is first converted to a UTC wall-clock ``timestamp`` with ``timezone('UTC', …)``.

    :func:`as_bucket` turns either result back into an aware UTC datetime.
    """
    if dialect == "postgresql":
        return sa.func.date_trunc("hour", sa.func.timezone("UTC", column))
    return sa.func.strftime("%Y-%m-%d %H:00:00", column)


def as_bucket(value: Any) -> datetime:
    """A bucket value read back from :func:`hour_bucket`, as an aware UTC datetime."""
    parsed = datetime.fromisoformat(value) if isinstance(value, str) else value
    if not isinstance(parsed, datetime):
        raise TypeError(f"unexpected hour bucket value {value!r}")
    return _utc(parsed)


# --------------------------------------------------------------------------- series


async def _series(
    session: AsyncSession,
    time_column: Any,
    window: Window,
    *,
    label: sa.ColumnElement[Any] | None = None,
    where: Sequence[sa.ColumnElement[bool]] = (),
) -> list[Point]:
    bucket = hour_bucket(time_column, dialect_of(session)).label("bucket")
    columns: list[Any] = [bucket, sa.func.count().label("value")]
    group: list[Any] = [bucket]
    if label is not None:
        labelled = label.label("label")
        columns.insert(1, labelled)
        group.append(labelled)
    query = (
        sa.select(*columns)
        .where(time_column >= window.start, time_column < window.end, *where)
        .group_by(*group)
        .order_by(*group)
    )
    rows = (await session.execute(query)).all()
    return [
        Point(
            bucket=as_bucket(row.bucket),
            label=row.label if label is not None else None,
            value=int(row.value),
        )
        for row in rows
    ]


def _status_changed(
    model: type[ExecutionHistory] | type[WorkerHistory], dialect: str
) -> sa.ColumnElement[bool]:
    return sa.and_(model.operation == "UPDATE", has_changed_field(model.changed_fields, "status", dialect))


def _new_status(model: type[ExecutionHistory] | type[WorkerHistory]) -> sa.ColumnElement[Any]:
    status: sa.ColumnElement[Any] = model.new_values["status"].as_string()
    return status


async def execution_status(session: AsyncSession, window: Window) -> list[Point]:
    """Execution status transitions per hour, labelled with the new status."""
    model = ExecutionHistory
    where = [_status_changed(model, dialect_of(session))]
    return await _series(session, model.time, window, label=_new_status(model), where=where)


async def execution_throughput(session: AsyncSession, window: Window) -> list[Point]:
    """Executions created per hour (history INSERT rows)."""
    model = ExecutionHistory
    return await _series(session, model.time, window, where=[model.operation == "INSERT"])


async def event_volume(session: AsyncSession, window: Window) -> list[Point]:
    """Events created per hour."""
    return await _series(session, Event.created, window)


async def enforcement_volume(session: AsyncSession, window: Window) -> list[Point]:
    """Enforcements created per hour."""
    return await _series(session, Enforcement.created, window)


async def worker_status(session: AsyncSession, window: Window) -> list[Point]:
    """Worker status transitions per hour, labelled with the new status."""
    model = WorkerHistory
    where = [_status_changed(model, dialect_of(session))]
    return await _series(session, model.time, window, label=_new_status(model), where=where)


async def failure_counts(session: AsyncSession, window: Window) -> FailureCounts:
    """Transitions into completed, failed and timeout within the window."""
    model = ExecutionHistory
    status = _new_status(model)
    query = (
        sa.select(status.label("status"), sa.func.count().label("value"))
        .where(
            model.time >= window.start,
            model.time < window.end,
            _status_changed(model, dialect_of(session)),
            status.in_(FAILURE_RATE_STATUSES),
        )
        .group_by(status)
    )
    counts = {row.status: int(row.value) for row in (await session.execute(query)).all()}
    return FailureCounts(
        completed=counts.get(ExecutionStatus.COMPLETED.value, 0),
        failed=counts.get(ExecutionStatus.FAILED.value, 0),
        timeout=counts.get(ExecutionStatus.TIMEOUT.value, 0),
    )
