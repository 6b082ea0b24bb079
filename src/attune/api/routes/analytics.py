"""Analytics routes (docs/api.md): hourly series of executions, events, enforcements and workers.

Every route takes the same range query and answers in the Data envelope; the series are computed
on demand by :mod:`attune.db.repos.analytics`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlalchemy.ext.asyncio import AsyncSession

from attune.api.authz import require
from attune.api.deps import AUTH, PlatformDep
from attune.api.schemas.analytics import Dashboard, FailureRate, Point, Series
from attune.api.schemas.common import Data
from attune.db.repos import analytics
from attune.db.types import utcnow
from attune.platform import Platform

router = APIRouter(prefix="/api/v1", tags=["analytics"], dependencies=AUTH)

SeriesQuery = Callable[[AsyncSession, analytics.Window], Awaitable[list[analytics.Point]]]


async def window(
    since: Annotated[datetime | None, Query(description="Range start (default: until − hours)")] = None,
    until: Annotated[datetime | None, Query(description="Range end (default: now)")] = None,
    hours: Annotated[int, Query(description="Range length when an end is missing (1–8760)")] = 24,
) -> analytics.Window:
    """The requested range; ``hours`` is clamped and ignored when both ends are given."""
    return analytics.resolve_window(since, until, hours, utcnow())


WindowDep = Annotated[analytics.Window, Depends(window)]


def _points(points: list[analytics.Point]) -> list[Point]:
    return [Point(bucket=p.bucket, label=p.label, value=p.value) for p in points]


def _failure_rate(counts: analytics.FailureCounts, span: analytics.Window) -> FailureRate:
    return FailureRate(
        since=span.since,
        until=span.until,
        total_terminal=counts.total,
        failed_count=counts.failed,
        timeout_count=counts.timeout,
        completed_count=counts.completed,
        failure_rate_pct=counts.rate_pct,
    )


async def _series(platform: Platform, span: analytics.Window, query: SeriesQuery) -> Data[Series]:
    async with platform.db.session() as session:
        points = await query(session, span)
    return Data(data=Series(since=span.since, until=span.until, data=_points(points)))


@router.get("/analytics/dashboard", dependencies=[require("analytics", "read")])
async def dashboard(platform: PlatformDep, span: WindowDep) -> Data[Dashboard]:
    """Every series and the failure rate over one range."""
    async with platform.db.session() as session:
        throughput = await analytics.execution_throughput(session, span)
        status = await analytics.execution_status(session, span)
        events = await analytics.event_volume(session, span)
        enforcements = await analytics.enforcement_volume(session, span)
        workers = await analytics.worker_status(session, span)
        failures = await analytics.failure_counts(session, span)
    return Data(
        data=Dashboard(
            since=span.since,
            until=span.until,
            execution_throughput=_points(throughput),
            execution_status=_points(status),
            event_volume=_points(events),
            enforcement_volume=_points(enforcements),
            worker_status=_points(workers),
            failure_rate=_failure_rate(failures, span),
        )
    )


@router.get("/analytics/executions/status", dependencies=[require("analytics", "read")])
async def execution_status(platform: PlatformDep, span: WindowDep) -> Data[Series]:
    """Execution status transitions per hour, labelled with the new status."""
    return await _series(platform, span, analytics.execution_status)


@router.get("/analytics/executions/throughput", dependencies=[require("analytics", "read")])
async def execution_throughput(platform: PlatformDep, span: WindowDep) -> Data[Series]:
    """Executions created per hour."""
    return await _series(platform, span, analytics.execution_throughput)


@router.get("/analytics/executions/failure-rate", dependencies=[require("analytics", "read")])
async def execution_failure_rate(platform: PlatformDep, span: WindowDep) -> Data[FailureRate]:
    """The share of terminal transitions that were failed or timeout."""
    async with platform.db.session() as session:
        counts = await analytics.failure_counts(session, span)
    return Data(data=_failure_rate(counts, span))


@router.get("/analytics/events/volume", dependencies=[require("analytics", "read")])
async def event_volume(platform: PlatformDep, span: WindowDep) -> Data[Series]:
    """Events created per hour."""
    return await _series(platform, span, analytics.event_volume)


@router.get("/analytics/workers/status", dependencies=[require("analytics", "read")])
async def worker_status(platform: PlatformDep, span: WindowDep) -> Data[Series]:
    """Worker status transitions per hour, labelled with the new status."""
    return await _series(platform, span, analytics.worker_status)


@router.get("/analytics/enforcements/volume", dependencies=[require("analytics", "read")])
async def enforcement_volume(platform: PlatformDep, span: WindowDep) -> Data[Series]:
    """Enforcements created per hour."""
    return await _series(platform, span, analytics.enforcement_volume)
