"""Analytics routes (docs/api.md, docs/operations.md): hourly series computed from the rows themselves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from attune.db import models
from attune.db.types import utcnow
from attune.platform import Platform

# Far enough in the past that rows written by the test itself (at "now") never fall in range.
T0 = datetime(2024, 5, 10, 8, 0, tzinfo=UTC)
H = timedelta(hours=1)
SERIES = (
    "/api/v1/analytics/executions/status",
    "/api/v1/analytics/executions/throughput",
    "/api/v1/analytics/events/volume",
    "/api/v1/analytics/workers/status",
    "/api/v1/analytics/enforcements/volume",
)


def iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


async def add(platform: Platform, *rows: Any) -> None:
    async with platform.db.transaction() as session:
        session.add_all(rows)


def transition(time: datetime, status: str, model: Any = models.ExecutionHistory, entity_id: int = 1) -> Any:
    return model(
        time=time,
        operation="UPDATE",
        entity_id=entity_id,
        entity_ref="core.echo",
        changed_fields=["status"],
        old_values={"status": "running"},
        new_values={"status": status},
    )


def created(time: datetime, entity_id: int = 1) -> models.ExecutionHistory:
    return models.ExecutionHistory(
        time=time,
        operation="INSERT",
        entity_id=entity_id,
        entity_ref="core.echo",
        changed_fields=[],
        new_values={"status": "requested"},
    )


def event(time: datetime) -> models.Event:
    return models.Event(trigger_ref="core.timer", created=time)


def enforcement(time: datetime) -> models.Enforcement:
    return models.Enforcement(rule_ref="core.rule", trigger_ref="core.timer", created=time)


def points(data: list[dict[str, Any]]) -> list[tuple[str, str | None, int]]:
    return [(p["bucket"], p["label"], p["value"]) for p in data]


async def get(api: httpx.AsyncClient, path: str, **params: Any) -> Any:
    response = await api.get(path, params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"data"}
    return body["data"]


async def test_status_series_counts_transitions_per_hour_by_new_status(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    await add(
        platform,
        transition(T0 + timedelta(minutes=5), "running"),
        transition(T0 + timedelta(minutes=50), "running"),
        transition(T0 + timedelta(minutes=55), "completed"),
        transition(T0 + H + timedelta(minutes=1), "failed"),
        transition(T0 + H + timedelta(minutes=2), "completed"),
        # Not a status change: ignored.
        models.ExecutionHistory(
            time=T0, operation="UPDATE", entity_id=1, changed_fields=["result"], new_values={"result": None}
        ),
    )

    data = await get(api, "/api/v1/analytics/executions/status", since=iso(T0), until=iso(T0 + 3 * H))

    assert (data["since"], data["until"]) == (iso(T0), iso(T0 + 3 * H))
    assert points(data["data"]) == [
        (iso(T0), "completed", 1),
        (iso(T0), "running", 2),
        (iso(T0 + H), "completed", 1),
        (iso(T0 + H), "failed", 1),
    ]


async def test_buckets_are_included_when_their_hour_start_is_in_range(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    await add(platform, *(event(T0 + i * H + timedelta(minutes=40)) for i in range(4)))

    # since=08:30 excludes the 08:00 bucket; until=10:15 includes the whole 10:00 bucket.
    data = await get(
        api,
        "/api/v1/analytics/events/volume",
        since=iso(T0 + timedelta(minutes=30)),
        until=iso(T0 + 2 * H + timedelta(minutes=15)),
    )

    assert points(data["data"]) == [(iso(T0 + H), None, 1), (iso(T0 + 2 * H), None, 1)]


async def test_volume_series_count_rows_created(api: httpx.AsyncClient, platform: Platform) -> None:
    await add(
        platform,
        created(T0), created(T0 + timedelta(minutes=59)), created(T0 + 2 * H),
        event(T0), event(T0 + H),
        enforcement(T0 + H), enforcement(T0 + H), enforcement(T0 + H + timedelta(minutes=30)),
    )  # fmt: skip
    span = {"since": iso(T0), "until": iso(T0 + 5 * H)}

    throughput = await get(api, "/api/v1/analytics/executions/throughput", **span)
    events = await get(api, "/api/v1/analytics/events/volume", **span)
    enforcements = await get(api, "/api/v1/analytics/enforcements/volume", **span)

    assert points(throughput["data"]) == [(iso(T0), None, 2), (iso(T0 + 2 * H), None, 1)]
    assert points(events["data"]) == [(iso(T0), None, 1), (iso(T0 + H), None, 1)]
    assert points(enforcements["data"]) == [(iso(T0 + H), None, 3)]


async def test_worker_status_series(api: httpx.AsyncClient, platform: Platform) -> None:
    await add(
        platform,
        transition(T0, "inactive", models.WorkerHistory),
        transition(T0 + timedelta(minutes=1), "active", models.WorkerHistory, entity_id=2),
        transition(T0 + timedelta(minutes=2), "inactive", models.WorkerHistory, entity_id=2),
    )

    data = await get(api, "/api/v1/analytics/workers/status", since=iso(T0), until=iso(T0))

    assert points(data["data"]) == [(iso(T0), "active", 1), (iso(T0), "inactive", 2)]


async def test_failure_rate(api: httpx.AsyncClient, platform: Platform) -> None:
    statuses = ["completed"] * 5 + ["failed"] * 2 + ["timeout", "cancelled", "running"]
    await add(platform, *(transition(T0 + timedelta(minutes=i), s) for i, s in enumerate(statuses)))

    data = await get(api, "/api/v1/analytics/executions/failure-rate", since=iso(T0), until=iso(T0 + H))
    empty = await get(api, "/api/v1/analytics/executions/failure-rate", since=iso(T0 + 9 * H))

    assert data == {
        "since": iso(T0),
        "until": iso(T0 + H),
        "total_terminal": 8,
        "failed_count": 2,
        "timeout_count": 1,
        "completed_count": 5,
        "failure_rate_pct": 37.5,
    }
    assert (empty["total_terminal"], empty["failure_rate_pct"]) == (0, 0.0)


async def test_dashboard_counts_equal_the_rows_created(api: httpx.AsyncClient, platform: Platform) -> None:
    executions = [models.Execution(action_ref="core.echo") for _ in range(6)]
    await add(platform, *executions)
    finals = ["completed", "completed", "completed", "failed", "timeout", "running"]
    async with platform.db.transaction() as session:
        for row, status in zip(executions, finals, strict=True):
            (await session.get(models.Execution, row.id)).status = status  # type: ignore[union-attr]
    await add(platform, *(models.Event(trigger_ref="core.timer") for _ in range(4)))
    await add(platform, *(models.Enforcement(rule_ref="core.r", trigger_ref="core.timer") for _ in range(3)))
    workers = [models.Worker(name=f"w{i}", worker_type="local", worker_role="action") for i in range(2)]
    await add(platform, *workers)
    async with platform.db.transaction() as session:
        (await session.get(models.Worker, workers[0].id)).status = "inactive"  # type: ignore[union-attr]

    data = await get(api, "/api/v1/analytics/dashboard")

    def totals(series: list[dict[str, Any]]) -> dict[str | None, int]:
        out: dict[str | None, int] = {}
        for point in series:
            out[point["label"]] = out.get(point["label"], 0) + point["value"]
        return out

    assert totals(data["execution_throughput"]) == {None: 6}
    assert totals(data["execution_status"]) == {"completed": 3, "failed": 1, "timeout": 1, "running": 1}
    assert totals(data["event_volume"]) == {None: 4}
    assert totals(data["enforcement_volume"]) == {None: 3}
    assert totals(data["worker_status"]) == {"inactive": 1}
    rate = data["failure_rate"]
    assert (rate["total_terminal"], rate["failed_count"], rate["timeout_count"], rate["completed_count"]) == (
        5,
        1,
        1,
        3,
    )
    assert rate["failure_rate_pct"] == 40.0
    for series in ("execution_throughput", "execution_status", "event_volume", "worker_status"):
        buckets = [(p["bucket"], p["label"] or "") for p in data[series]]
        assert buckets == sorted(buckets)


async def test_default_range_is_the_last_24_hours(api: httpx.AsyncClient) -> None:
    before = utcnow()
    data = await get(api, "/api/v1/analytics/dashboard")
    after = utcnow()

    since, until = datetime.fromisoformat(data["since"]), datetime.fromisoformat(data["until"])
    assert before <= until <= after
    assert until - since == timedelta(hours=24)
    assert data["failure_rate"]["since"] == data["since"]


async def test_hours_is_clamped_and_fills_the_missing_end(api: httpx.AsyncClient) -> None:
    until = T0 + 10 * H
    path = "/api/v1/analytics/events/volume"

    one = await get(api, path, until=iso(until), hours=0)
    year = await get(api, path, until=iso(until), hours=100000)
    both = await get(api, path, since=iso(T0), until=iso(until), hours=1)
    since_only = await get(api, path, since=iso(T0), hours=1)

    assert one["since"] == iso(until - H)
    assert year["since"] == iso(until - 8760 * H)
    assert (both["since"], both["until"]) == (iso(T0), iso(until))
    assert since_only["since"] == iso(T0)
    assert datetime.fromisoformat(since_only["until"]) > T0 + 24 * H


async def test_every_series_route_answers_the_same_shape(api: httpx.AsyncClient, platform: Platform) -> None:
    await add(platform, event(T0))
    for path in SERIES:
        data = await get(api, path, since=iso(T0), until=iso(T0 + H))
        assert set(data) == {"since", "until", "data"}, path
        for point in data["data"]:
            assert set(point) == {"bucket", "label", "value"}


async def test_analytics_requires_a_token(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/v1/analytics/dashboard")).status_code == 401
