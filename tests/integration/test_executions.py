"""/api/v1/executions (docs/api.md): manual runs, parameter rules, secrets, the log."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from attune.db import models
from attune.db.repos import executions as execution_repo
from attune.platform import Platform

EXECUTIONS = "/api/v1/executions"
EXECUTE = f"{EXECUTIONS}/execute"
T0 = datetime(2024, 1, 1, tzinfo=UTC)
SLEEP_SCHEMA = {"seconds": {"type": "integer", "required": True}}
LOGIN_SCHEMA = {
    "user": {"type": "string", "required": True},
    "password": {"type": "string", "secret": True},
    "greeting": {"type": "string", "default": "hello"},
    "retries": {"type": "integer", "default": 3},
}


async def staged(platform: Platform, message_type: str) -> list[dict[str, Any]]:
    async with platform.db.session() as session:
        query = (
            sa.select(models.OutboxMessage)
            .where(models.OutboxMessage.message_type == message_type)
            .order_by(models.OutboxMessage.id)
        )
        return [row.body for row in (await session.execute(query)).scalars()]


async def add(platform: Platform, *rows: Any) -> None:
    async with platform.db.transaction() as session:
        for row in rows:
            session.add(row)
            await session.flush()


async def add_action(platform: Platform, ref: str, param_schema: Any = None) -> models.Action:
    pack_ref, name = ref.split(".")
    async with platform.db.transaction() as session:
        pack = (await session.execute(sa.select(models.Pack).where(models.Pack.ref == pack_ref))).scalar()
        if pack is None:
            pack = models.Pack(ref=pack_ref, label=pack_ref, version="1.0.0")
            session.add(pack)
            await session.flush()
        action = models.Action(
            ref=ref,
            pack=pack.id,
            pack_ref=pack_ref,
            label=name,
            description="",
            entrypoint=f"{name}.sh",
            param_schema=param_schema,
        )
        session.add(action)
        await session.flush()
    return action


async def execution_row(platform: Platform, execution_id: int) -> models.Execution:
    async with platform.db.session() as session:
        row = await session.get(models.Execution, execution_id)
    assert row is not None
    return row


def execution(action_ref: str = "demo.run", days: float = 0, **fields: Any) -> models.Execution:
    return models.Execution(action_ref=action_ref, created=T0 + timedelta(days), **fields)


# --- POST /executions/execute -------------------------------------------------------------------


@pytest.mark.usefixtures("held_outbox")
async def test_execute_creates_a_requested_execution_and_stages_the_request(
    api: httpx.AsyncClient, platform: Platform, user: models.Identity
) -> None:
    action = await add_action(platform, "demo.sleep", SLEEP_SCHEMA)
    body = {"action_ref": "demo.sleep", "parameters": {"seconds": 2}, "env_vars": {"DEBUG": "1"}}
    response = await api.post(EXECUTE, json=body)
    assert response.status_code == 201
    assert set(response.json()) == {"data"}
    data = response.json()["data"]
    assert set(data) == {
        "id",
        "action",
        "action_ref",
        "config",
        "parent",
        "enforcement",
        "executor",
        "status",
        "result",
        "started_at",
        "original_execution",
        "retry_count",
        "max_retries",
        "retry_reason",
        "worker",
        "created",
        "updated",
    }
    assert data["action"] == action.id
    assert data["action_ref"] == "demo.sleep"
    assert data["config"] == {"seconds": 2}
    assert data["executor"] == user.id
    assert data["status"] == "requested"
    assert (data["parent"], data["enforcement"], data["result"], data["worker"]) == (None, None, None, None)
    row = await execution_row(platform, data["id"])
    assert row.env_vars == {"DEBUG": "1"}
    [message] = await staged(platform, "ExecutionRequested")
    assert message["payload"] == {
        "execution_id": data["id"],
        "action_id": action.id,
        "action_ref": "demo.sleep",
        "parent_id": None,
        "enforcement_id": None,
        "config": {"seconds": 2},
    }
    assert message["headers"]["source_service"] == "api-service"


async def test_execute_unknown_action_is_404(api: httpx.AsyncClient) -> None:
    response = await api.post(EXECUTE, json={"action_ref": "demo.nothing"})
    assert response.status_code == 404
    assert response.json() == {"error": "Action 'demo.nothing' not found", "code": "NOT_FOUND"}


@pytest.mark.usefixtures("held_outbox")
async def test_execute_validates_parameters_naming_the_field(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    await add_action(platform, "core.sleep", SLEEP_SCHEMA)
    missing = await api.post(EXECUTE, json={"action_ref": "core.sleep", "parameters": {}})
    assert missing.status_code == 422
    assert missing.json() == {
        "error": "Invalid parameters for action 'core.sleep': 'seconds' is a required property",
        "code": "VALIDATION_ERROR",
    }
    wrong = await api.post(EXECUTE, json={"action_ref": "core.sleep", "parameters": {"seconds": "soon"}})
    assert wrong.status_code == 422
    assert wrong.json()["error"].startswith("Invalid parameters for action 'core.sleep': ")
    assert wrong.json()["error"].endswith(" at /seconds")
    # Manual runs take literal values: a template is not a placeholder here.
    template = await api.post(
        EXECUTE, json={"action_ref": "core.sleep", "parameters": {"seconds": "{{ n }}"}}
    )
    assert template.status_code == 422
    assert await staged(platform, "ExecutionRequested") == []
    async with platform.db.session() as session:
        assert (await session.execute(sa.select(sa.func.count()).select_from(models.Execution))).scalar() == 0


async def test_execute_applies_defaults(api: httpx.AsyncClient, platform: Platform) -> None:
    await add_action(platform, "demo.login", LOGIN_SCHEMA)
    response = await api.post(EXECUTE, json={"action_ref": "demo.login", "parameters": {"user": "bob"}})
    assert response.status_code == 201
    assert response.json()["data"]["config"] == {"user": "bob", "greeting": "hello", "retries": 3}
    explicit = await api.post(
        EXECUTE, json={"action_ref": "demo.login", "parameters": {"user": "bob", "retries": 0}}
    )
    assert explicit.json()["data"]["config"]["retries"] == 0


async def test_execute_without_schema_accepts_anything(api: httpx.AsyncClient, platform: Platform) -> None:
    await add_action(platform, "demo.free")
    response = await api.post(
        EXECUTE, json={"action_ref": "demo.free", "parameters": {"x": [1, {"y": None}]}}
    )
    assert response.status_code == 201
    assert response.json()["data"]["config"] == {"x": [1, {"y": None}]}
    bare = await api.post(EXECUTE, json={"action_ref": "demo.free"})
    assert bare.status_code == 201
    assert bare.json()["data"]["config"] == {}


async def test_execute_body_shape_errors_are_plain_422(api: httpx.AsyncClient, platform: Platform) -> None:
    await add_action(platform, "demo.free")
    body: dict[str, Any]
    for body in (
        {"parameters": {}},
        {"action_ref": "demo.free", "parameters": [1, 2]},
        {"action_ref": "demo.free", "env_vars": {"N": 1}},
    ):
        response = await api.post(EXECUTE, json=body)
        assert response.status_code == 422, body
        assert response.headers["content-type"].startswith("text/plain")


@pytest.mark.usefixtures("held_outbox")
async def test_secret_parameters_are_masked_in_responses(api: httpx.AsyncClient, platform: Platform) -> None:
    await add_action(platform, "demo.login", LOGIN_SCHEMA)
    body = {"action_ref": "demo.login", "parameters": {"user": "bob", "password": "pa55word"}}
    created = await api.post(EXECUTE, json=body)
    assert created.status_code == 201
    data = created.json()["data"]
    assert data["config"]["password"] == "********"
    assert data["config"]["user"] == "bob"
    assert "pa55word" not in created.text
    fetched = await api.get(f"{EXECUTIONS}/{data['id']}")
    assert fetched.json()["data"]["config"]["password"] == "********"
    assert "pa55word" not in fetched.text
    # Neither the stored config nor the bus message hold it: only the encrypted secret_params do.
    row = await execution_row(platform, data["id"])
    assert row.config["password"] == "********"
    assert row.secret_params is not None and "pa55word" not in row.secret_params
    revealed = execution_repo.full_parameters(row, platform.secrets)
    assert (revealed["user"], revealed["password"]) == ("bob", "pa55word")
    [message] = await staged(platform, "ExecutionRequested")
    assert "pa55word" not in json.dumps(message)


async def test_secret_parameters_are_masked_in_wrapped_config(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    action = await add_action(platform, "demo.login", LOGIN_SCHEMA)
    child = execution(
        "demo.login", action=action.id, config={"parameters": {"user": "u", "password": "p"}, "context": {}}
    )
    await add(platform, child)
    data = (await api.get(f"{EXECUTIONS}/{child.id}")).json()["data"]
    assert data["config"] == {"parameters": {"user": "u", "password": "********"}, "context": {}}


# --- GET /executions/{id} -----------------------------------------------------------------------


async def test_get_one_and_404(api: httpx.AsyncClient, platform: Platform) -> None:
    task = {
        "workflow_execution": 7,
        "task_name": "step1",
        "retry_count": 0,
        "max_retries": 2,
        "timed_out": False,
    }
    row = execution(
        status="running",
        result={"ok": True},
        parent=3,
        worker=4,
        original_execution=2,
        started_at=T0 + timedelta(seconds=5),
        workflow_task=task,
        env_vars={"SECRET_ENV": "x"},
    )
    await add(platform, row)
    response = await api.get(f"{EXECUTIONS}/{row.id}")
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["status"] == "running"
    assert data["result"] == {"ok": True}
    assert (data["parent"], data["worker"], data["original_execution"]) == (3, 4, 2)
    assert data["started_at"] == "2024-01-01T00:00:05Z"
    assert data["workflow_task"]["task_name"] == "step1"
    assert data["workflow_task"]["max_retries"] == 2
    assert data["workflow_task"]["duration_ms"] is None
    assert "env_vars" not in data
    missing = await api.get(f"{EXECUTIONS}/5555")
    assert missing.status_code == 404
    assert missing.json() == {"error": "Execution with ID 5555 not found", "code": "NOT_FOUND"}
    assert (await api.get(f"{EXECUTIONS}/abc")).status_code == 400


# --- GET /executions ----------------------------------------------------------------------------


async def seed_log(platform: Platform) -> dict[str, int]:
    """Six executions on consecutive days, with two enforcements; returns ids by name."""
    rule_a = models.Enforcement(rule_ref="demo.rule_a", trigger_ref="demo.tick")
    rule_b = models.Enforcement(rule_ref="demo.rule_b", trigger_ref="demo.tock")
    await add(platform, rule_a, rule_b)
    rows = {
        "manual": execution("demo.run", 0, status="completed", executor=1, result={"stdout": "Hello World"}),
        "a1": execution("demo.run", 1, status="failed", enforcement=rule_a.id, result={"b": 1, "a": 2}),
        # A retry: an enforcement has one first execution (uq_execution_enforcement), retries share it.
        "a2": execution(
            "demo.other", 2, status="completed", enforcement=rule_a.id, result={"msg": "Grüße"}, retry_count=1
        ),
        "b1": execution("demonic.run", 3, status="running", enforcement=rule_b.id),
        "child": execution("demo.run", 4, status="requested", executor=1, parent=0),
        "wf": execution(
            "demo.run",
            5,
            status="requested",
            result={"items": ["x", "hello"]},
            workflow_task={"workflow_execution": 1, "task_name": "t"},
        ),
    }
    await add(platform, rows["manual"])
    rows["child"].parent = rows["manual"].id
    await add(platform, *[row for name, row in rows.items() if name != "manual"])
    return {name: row.id for name, row in rows.items()} | {"rule_a": rule_a.id, "rule_b": rule_b.id}


async def test_list_is_newest_first_with_enforcement_refs(api: httpx.AsyncClient, platform: Platform) -> None:
    ids = await seed_log(platform)
    body = (await api.get(EXECUTIONS)).json()
    names = {value: key for key, value in ids.items() if not key.startswith("rule")}
    assert [names[item["id"]] for item in body["data"]] == ["wf", "child", "b1", "a2", "a1", "manual"]
    by_name = {names[item["id"]]: item for item in body["data"]}
    assert (by_name["a1"]["rule_ref"], by_name["a1"]["trigger_ref"]) == ("demo.rule_a", "demo.tick")
    assert (by_name["manual"]["rule_ref"], by_name["manual"]["trigger_ref"]) == (None, None)
    assert set(by_name["manual"]) == {
        "id",
        "action_ref",
        "status",
        "parent",
        "enforcement",
        "rule_ref",
        "trigger_ref",
        "original_execution",
        "retry_count",
        "created",
        "updated",
    }
    assert by_name["wf"]["workflow_task"]["task_name"] == "t"
    assert body["pagination"]["page_size"] == 20


async def test_list_filters(api: httpx.AsyncClient, platform: Platform) -> None:
    ids = await seed_log(platform)
    names = {value: key for key, value in ids.items() if not key.startswith("rule")}

    async def found(**params: Any) -> list[str]:
        response = await api.get(EXECUTIONS, params=params)
        assert response.status_code == 200, response.text
        assert response.json()["pagination"]["total_items"] == len(response.json()["data"])
        return [names[item["id"]] for item in response.json()["data"]]

    assert await found(status="completed") == ["a2", "manual"]
    assert await found(enforcement=ids["rule_a"]) == ["a2", "a1"]
    assert await found(status="running", enforcement=ids["rule_a"]) == ["b1"]
    assert await found(action_ref="demo.run") == ["wf", "child", "a1", "manual"]
    assert await found(pack_name="demo") == ["wf", "child", "a2", "a1", "manual"]
    assert await found(pack_name="demonic") == ["b1"]
    assert await found(pack_name="dem") == []
    assert await found(rule_ref="demo.rule_a") == ["a2", "a1"]
    assert await found(trigger_ref="demo.tock") == ["b1"]
    assert await found(rule_ref="demo.rule_a", trigger_ref="demo.tock") == []
    assert await found(executor=1) == ["child", "manual"]
    assert await found(parent=ids["manual"]) == ["child"]
    assert await found(top_level_only="true", executor=1) == ["manual"]
    assert await found(top_level_only="false", executor=1) == ["child", "manual"]
    assert (await api.get(EXECUTIONS, params={"status": "bogus"})).status_code == 400


async def test_result_contains_is_a_case_insensitive_substring(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    ids = await seed_log(platform)
    names = {value: key for key, value in ids.items() if not key.startswith("rule")}

    async def found(needle: str, **params: Any) -> list[str]:
        response = await api.get(EXECUTIONS, params={"result_contains": needle, **params})
        assert response.status_code == 200
        return [names[item["id"]] for item in response.json()["data"]]

    assert await found("hello") == ["wf", "manual"]
    assert await found("WORLD") == ["manual"]
    assert await found("GRÜ") == ["a2"]
    # The serialised form is compact JSON with sorted keys, identical on both databases.
    assert await found('"a":2,"b":1') == ["a1"]
    assert await found('"items":["x"') == ["wf"]
    assert await found("null") == []
    assert await found("hello", status="requested") == ["wf"]
    assert await found("%") == []
    paged = (await api.get(EXECUTIONS, params={"result_contains": "E", "per_page": 1, "page": 2})).json()
    assert [names[item["id"]] for item in paged["data"]] == ["a2"]
    assert paged["pagination"]["total_items"] == 3
    assert paged["data"][0]["rule_ref"] == "demo.rule_a"


async def test_list_pagination_caps_at_100(api: httpx.AsyncClient, platform: Platform) -> None:
    async with platform.db.transaction() as session:
        session.add_all([execution(days=i / 1000) for i in range(105)])
    body = (await api.get(EXECUTIONS, params={"per_page": 200})).json()
    assert len(body["data"]) == 100
    assert body["pagination"]["page_size"] == 200
    assert body["pagination"]["total_items"] == 105
    assert body["pagination"]["total_pages"] == 1
    last = (await api.get(EXECUTIONS, params={"per_page": 20, "page": 6})).json()
    assert len(last["data"]) == 5


# --- stats, by status, by enforcement ------------------------------------------------------------


async def test_stats_count_every_execution(api: httpx.AsyncClient, platform: Platform) -> None:
    statuses = ["failed"] * 2 + ["requested", "scheduling", "scheduled", "canceling", "abandoned", "timeout"]
    statuses += ["cancelled", "running"] + ["completed"] * 1000
    now = datetime.now(UTC)
    rows = [
        {"action_ref": "demo.run", "status": status, "created": T0 + timedelta(seconds=i), "updated": now}
        for i, status in enumerate(statuses)
    ]
    async with platform.db.transaction() as session:
        await session.execute(sa.insert(models.Execution), rows)
    response = await api.get(f"{EXECUTIONS}/stats")
    assert response.status_code == 200
    # The two oldest rows (failed) lie outside the newest 1000 and still count.
    assert response.json() == {
        "data": {
            "total": 1010,
            "completed": 1000,
            "failed": 2,
            "running": 1,
            "pending": 3,
            "cancelled": 1,
            "timeout": 1,
            "abandoned": 1,
            "paused": 0,
        }
    }


async def test_stats_when_empty(api: httpx.AsyncClient) -> None:
    data = (await api.get(f"{EXECUTIONS}/stats")).json()["data"]
    assert data == dict.fromkeys(
        ("total", "completed", "failed", "running", "pending", "cancelled", "timeout", "abandoned", "paused"),
        0,
    )


async def test_by_status_is_case_insensitive_family_a(api: httpx.AsyncClient, platform: Platform) -> None:
    ids = await seed_log(platform)
    response = await api.get(f"{EXECUTIONS}/status/COMPLETED", params={"page_size": 1})
    assert response.status_code == 200
    body = response.json()
    assert [item["id"] for item in body["data"]] == [ids["a2"]]
    assert body["data"][0]["rule_ref"] is None
    assert body["pagination"]["total_items"] == 2
    assert body["pagination"]["page_size"] == 1
    bad = await api.get(f"{EXECUTIONS}/status/bogus")
    assert bad.status_code == 400
    assert bad.json() == {"error": "Invalid execution status: bogus", "code": "BAD_REQUEST"}


async def test_executions_of_an_enforcement(api: httpx.AsyncClient, platform: Platform) -> None:
    ids = await seed_log(platform)
    body = (await api.get(f"/api/v1/enforcements/{ids['rule_a']}/executions")).json()
    assert [item["id"] for item in body["data"]] == [ids["a2"], ids["a1"]]
    assert body["data"][0]["rule_ref"] is None
    assert body["pagination"]["page_size"] == 50
    unknown = await api.get("/api/v1/enforcements/99999/executions")
    assert unknown.status_code == 200
    assert unknown.json()["data"] == []
    assert unknown.json()["pagination"]["total_items"] == 0
