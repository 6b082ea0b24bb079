"""Analytics schemas (docs/api.md): hourly series and the failure rate."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from attune.api.schemas.common import ApiModel


class Point(ApiModel):
    """One hourly value; ``label`` is the new status for status series, null otherwise."""

    bucket: datetime = Field(description="The UTC hour start")
    label: str | None
    value: int


class Series(ApiModel):
    """The points of one series over ``[since, until]``, by bucket then label."""

    since: datetime
    until: datetime
    data: list[Point]


class FailureRate(ApiModel):
    """Terminal transitions in the range; ``failure_rate_pct`` = (failed + timeout) / total × 100."""

    since: datetime
    until: datetime
    total_terminal: int
    failed_count: int
    timeout_count: int
    completed_count: int
    failure_rate_pct: float


class Dashboard(ApiModel):
    """Every series of the range at once."""

    since: datetime
    until: datetime
    execution_throughput: list[Point]
    execution_status: list[Point]
    event_volume: list[Point]
    enforcement_volume: list[Point]
    worker_status: list[Point]
    failure_rate: FailureRate
