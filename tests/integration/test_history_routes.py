"""History routes (docs/api.md): the change audit of executions and workers, as clients see it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import sqlalchemy as sa

from attune.db import models
from attune.db.history import digest
from attune.platform import Platform

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


async def add(platform: Platform, *rows: Any) -> None:
    async with platform.db.transaction() as session:
        for row in rows:
            session.add(row)
            await session.flush()


async def set_fields(platform: Platform, model: Any, entity_id: int, **values: Any) -> None:
    async with platform.db.transaction() as session:
        row = await session.get(model, entity_id)
        for key, value in values.items():
            setattr(row, key, value)


def execution(**values: Any) -> models.Execution:
    return models.Execution(**{"action_ref": "hist.act", "executor": 1, **values})


def worker(name: str, **values: Any) -> models.Worker:
    return models.Worker(
        **{"name": name, "worker_type": "local", "worker_role": "action", "host": "h", **values}
    )


async def add_action(platform: Platform, ref: str = "hist.act") -> None:
    pack_ref, name = ref.split(".")
    async with platform.db.transaction() as session:
        pack = models.Pack(ref=pack_ref, label=pack_ref, version="1.0.0")
        session.add(pack)
        await session.flush()
        session.add(
            models.Action(
                ref=ref, pack=pack.id, pack_ref=pack_ref, label=name, description="", entrypoint="run.sh"
            )
        )


def history_row(model: Any, entity_id: int, time: datetime, **values: Any) -> Any:
    return model(
        **{
            "time": time,
            "operation": "UPDATE",
            "entity_id": entity_id,
            "entity_ref": "hist.act",
            "changed_fields": ["status"],
            "old_values": {"status": "scheduled"},
            "new_values": {"status": "running"},
            **values,
        }
    )


async def test_execution_history_lists_the_insert_and_each_status_change_newest_first(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    await add_action(platform)
    created = await api.post("/api/v1/executions/execute", json={"action_ref": "hist.act", "parameters": {}})
    assert created.status_code == 201, created.text
    execution_id = created.json()["data"]["id"]
    for status in ("scheduled", "running"):
        await set_fields(platform, models.Execution, execution_id, status=status)
    await set_fields(platform, models.Execution, execution_id, status="completed", result={"exit_code": 0})

    response = await api.get(f"/api/v1/executions/{execution_id}/history")

    assert response.status_code == 200
    body = response.json()
    assert body["pagination"] == {
        "page": 1,
        "page_size": 50,
        "total_items": 4,
        "total_pages": 1,
        "has_next": False,
        "has_previous": False,
    }
    records = body["data"]
    assert [r["operation"] for r in records] == ["UPDATE", "UPDATE", "UPDATE", "INSERT"]
    assert {r["entity_id"] for r in records} == {execution_id}
    assert {r["entity_ref"] for r in records} == {"hist.act"}
    completed, running, scheduled, inserted = records
    assert completed["changed_fields"] == ["status", "result"]
    assert completed["old_values"] == {"status": "running", "result": None}
    assert completed["new_values"] == {"status": "completed", "result": digest({"exit_code": 0})}
    assert (running["old_values"], running["new_values"]) == ({"status": "scheduled"}, {"status": "running"})
    assert (scheduled["old_values"], scheduled["new_values"]) == (
        {"status": "requested"},
        {"status": "scheduled"},
    )
    assert inserted["changed_fields"] == []
    assert inserted["old_values"] is None
    assert inserted["new_values"]["status"] == "requested"
    assert inserted["new_values"]["action_ref"] == "hist.act"
    assert inserted["time"].endswith("Z")
    times = [datetime.fromisoformat(r["time"]) for r in records]
    assert times == sorted(times, reverse=True)


async def test_history_of_an_unknown_execution_is_an_empty_page(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/v1/executions/987654/history")

    assert response.status_code == 200
    assert response.json()["data"] == []
    assert response.json()["pagination"]["total_items"] == 0


async def test_execution_history_is_scoped_to_its_execution_whatever_entity_id_says(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    first, second = execution(), execution()
    await add(platform, first, second)

    data = (await api.get(f"/api/v1/executions/{first.id}/history", params={"entity_id": second.id})).json()

    assert [r["entity_id"] for r in data["data"]] == [first.id]


async def test_unknown_entity_type_is_rejected_with_the_contract_message(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/v1/history/rule")

    assert response.status_code == 400
    assert response.json() == {
        "error": "unknown history entity type 'rule'; expected one of: execution, worker",
        "code": "BAD_REQUEST",
    }


async def test_entity_type_is_case_insensitive(api: httpx.AsyncClient, platform: Platform) -> None:
    await add(platform, execution())

    response = await api.get("/api/v1/history/Execution")

    assert response.status_code == 200
    assert [r["operation"] for r in response.json()["data"]] == ["INSERT"]


async def test_history_requires_a_token(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/v1/history/execution")).status_code == 401


async def test_filters_by_entity_ref_operation_and_changed_field(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    mine, other = execution(), execution(action_ref="hist.other")
    await add(platform, mine, other)
    await set_fields(platform, models.Execution, mine.id, status="running")
    await set_fields(platform, models.Execution, mine.id, result={"partial": True})
    await set_fields(platform, models.Execution, other.id, status="running")

    async def ids(**params: Any) -> list[tuple[int, str, list[str]]]:
        response = await api.get("/api/v1/history/execution", params=params)
        assert response.status_code == 200
        return [(r["entity_id"], r["operation"], r["changed_fields"]) for r in response.json()["data"]]

    assert await ids(entity_ref="hist.act") == [
        (mine.id, "UPDATE", ["result"]),
        (mine.id, "UPDATE", ["status"]),
        (mine.id, "INSERT", []),
    ]
    assert await ids(entity_ref="hist") == []
    assert await ids(operation="insert") == [(other.id, "INSERT", []), (mine.id, "INSERT", [])]
    assert await ids(changed_field="status") == [
        (other.id, "UPDATE", ["status"]),
        (mine.id, "UPDATE", ["status"]),
    ]
    assert await ids(changed_field="result", entity_id=mine.id) == [(mine.id, "UPDATE", ["result"])]
    # Membership in the list, not a substring of its text.
    assert await ids(changed_field="statu") == []
    assert await ids(changed_field='status"') == []


async def test_since_and_until_are_inclusive(api: httpx.AsyncClient, platform: Platform) -> None:
    times = [T0, T0 + timedelta(minutes=1), T0 + timedelta(minutes=2)]
    await add(platform, *(history_row(models.ExecutionHistory, 7, t) for t in times))

    async def found(**params: str) -> list[str]:
        data = (await api.get("/api/v1/history/execution", params=params)).json()["data"]
        return [r["time"] for r in data]

    assert await found(since=iso(times[1])) == [iso(times[2]), iso(times[1])]
    assert await found(until=iso(times[1])) == [iso(times[1]), iso(times[0])]
    assert await found(since=iso(times[1]), until=iso(times[1])) == [iso(times[1])]


async def test_pages_use_family_h(api: httpx.AsyncClient, platform: Platform) -> None:
    await add(
        platform, *(history_row(models.ExecutionHistory, 7, T0 + timedelta(seconds=i)) for i in range(5))
    )

    body = (await api.get("/api/v1/history/execution", params={"page": 2, "page_size": 2})).json()

    assert [r["time"] for r in body["data"]] == [
        iso(T0 + timedelta(seconds=2)),
        iso(T0 + timedelta(seconds=1)),
    ]
    assert body["pagination"]["total_items"] == 5
    assert body["pagination"]["total_pages"] == 3
    # per_page belongs to family B and has no effect here.
    assert (await api.get("/api/v1/history/execution", params={"per_page": 1})).json()["pagination"][
        "page_size"
    ] == 50


async def test_deleting_an_execution_is_recorded_without_values(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    row = execution()
    await add(platform, row)
    async with platform.db.transaction() as session:
        await session.delete(await session.get(models.Execution, row.id))

    latest = (await api.get(f"/api/v1/executions/{row.id}/history")).json()["data"][0]

    assert latest["operation"] == "DELETE"
    assert (latest["changed_fields"], latest["old_values"], latest["new_values"]) == ([], None, None)


async def test_worker_history_records_status_changes_but_not_heartbeats(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    row = worker("worker-hist")
    await add(platform, row)
    await set_fields(platform, models.Worker, row.id, last_heartbeat=T0)
    await set_fields(platform, models.Worker, row.id, status="inactive")

    response = await api.get(f"/api/v1/workers/{row.id}/history")

    assert response.status_code == 200
    records = response.json()["data"]
    assert [(r["operation"], r["changed_fields"]) for r in records] == [
        ("UPDATE", ["status"]),
        ("INSERT", []),
    ]
    assert (records[0]["old_values"], records[0]["new_values"]) == (
        {"status": "active"},
        {"status": "inactive"},
    )
    assert records[1]["new_values"] == {
        "name": "worker-hist",
        "worker_type": "local",
        "worker_role": "action",
        "status": "active",
        "host": "h",
        "port": None,
    }
    assert {r["entity_ref"] for r in records} == {"worker-hist"}
    # The worker resource itself is still served by its own route.
    assert (await api.get(f"/api/v1/workers/{row.id}")).json()["data"]["name"] == "worker-hist"
    assert (await api.get("/api/v1/history/worker", params={"entity_ref": "worker-hist"})).json()[
        "pagination"
    ]["total_items"] == 2


async def test_history_records_stay_after_the_execution_is_gone(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    row = execution()
    await add(platform, row)
    async with platform.db.transaction() as session:
        await session.execute(sa.delete(models.Execution).where(models.Execution.id == row.id))

    records = (await api.get("/api/v1/history/execution", params={"entity_id": row.id})).json()["data"]

    assert [r["operation"] for r in records] == ["DELETE", "INSERT"]
