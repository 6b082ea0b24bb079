"""/api/v1/rules (docs/api.md): CRUD, parameter validation and bus messages."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from attune.db import models
from attune.messaging.messages import Envelope
from attune.messaging.topology import EVENTS_EXCHANGE, QueueSpec
from attune.platform import Platform


@pytest.fixture
async def seed(platform: Platform) -> dict[str, int]:
    """Pack ``demo``; action ``demo.notify`` (requires ``to``) and trigger ``demo.tick`` (``interval``)."""
    async with platform.db.transaction() as session:
        pack = models.Pack(ref="demo", label="Demo", version="1.0.0")
        session.add(pack)
        await session.flush()
        action = models.Action(
            ref="demo.notify",
            pack=pack.id,
            pack_ref="demo",
            label="Notify",
            description="",
            entrypoint="notify.sh",
            param_schema={"to": {"type": "string", "required": True}, "count": {"type": "integer"}},
        )
        other = models.Action(
            ref="demo.other", pack=pack.id, pack_ref="demo", label="O", description="", entrypoint="o.sh"
        )
        trigger = models.Trigger(
            ref="demo.tick",
            pack=pack.id,
            pack_ref="demo",
            label="Tick",
            enabled=True,
            param_schema={"interval": {"type": "integer", "minimum": 1, "required": True}},
        )
        loose = models.Trigger(ref="demo.loose", pack=pack.id, pack_ref="demo", label="Loose", enabled=True)
        session.add_all([action, other, trigger, loose])
        await session.flush()
        return {"pack": pack.id, "action": action.id, "trigger": trigger.id}


@pytest.fixture
async def messages(platform: Platform) -> AsyncIterator[list[Envelope]]:
    """Every rule lifecycle message published from now on."""
    received: list[Envelope] = []

    async def handler(envelope: Envelope) -> None:
        received.append(envelope)

    name = f"test.rules.{uuid.uuid4().hex[:8]}"
    await platform.bus.declare_queue(QueueSpec(name, ((EVENTS_EXCHANGE, "rule.*"),)))
    consumer = await platform.bus.consume(name, handler)
    yield received
    await consumer.cancel()


async def settle(platform: Platform) -> None:
    await platform.relay.flush()
    await platform.bus.join(timeout=10)


def rule_body(ref: str = "demo.on_tick", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "ref": ref,
        "pack_ref": "demo",
        "label": "On tick",
        "description": "Notify on every tick",
        "action_ref": "demo.notify",
        "trigger_ref": "demo.tick",
        "action_params": {"to": "ops", "count": "{{ event.payload.n }}"},
        "trigger_params": {"interval": 5},
    }
    body.update(extra)
    return body


async def test_create_shape_and_rule_created_message(
    api: httpx.AsyncClient, seed: dict[str, int], platform: Platform, messages: list[Envelope]
) -> None:
    body = rule_body(conditions=[{"field": "n", "operator": "equals", "value": 1}])
    del body["description"]
    response = await api.post("/api/v1/rules", json=body)
    assert response.status_code == 201
    assert response.json()["message"] == "Rule created successfully"
    data = response.json()["data"]
    assert data["description"] == ""
    assert (data["pack"], data["action"], data["trigger"]) == (seed["pack"], seed["action"], seed["trigger"])
    assert data["action_params"] == {"to": "ops", "count": "{{ event.payload.n }}"}
    assert data["trigger_params"] == {"interval": 5}
    assert data["conditions"] == [{"field": "n", "operator": "equals", "value": 1}]
    assert data["enabled"] is True
    assert data["is_adhoc"] is True
    await settle(platform)
    assert [m.message_type for m in messages] == ["RuleCreated"]
    assert messages[0].payload == {
        "rule_id": data["id"],
        "rule_ref": "demo.on_tick",
        "trigger_id": seed["trigger"],
        "trigger_ref": "demo.tick",
        "action_id": seed["action"],
        "action_ref": "demo.notify",
        "trigger_params": {"interval": 5},
        "enabled": True,
    }
    assert messages[0].headers.source_service == "api"


async def test_create_defaults(api: httpx.AsyncClient, seed: dict[str, int]) -> None:
    body = {
        "ref": "demo.plain",
        "pack_ref": "demo",
        "label": "Plain",
        "description": "d",
        "action_ref": "demo.other",
        "trigger_ref": "demo.loose",
    }
    data = (await api.post("/api/v1/rules", json=body)).json()["data"]
    assert (data["conditions"], data["action_params"], data["trigger_params"]) == ({}, {}, {})
    assert data["enabled"] is True
    nulls = {**body, "ref": "demo.nulls", "conditions": None, "action_params": None, "trigger_params": None}
    response = await api.post("/api/v1/rules", json=nulls)
    assert response.status_code == 201
    data = response.json()["data"]
    assert (data["conditions"], data["action_params"], data["trigger_params"]) == ({}, {}, {})


async def test_create_errors(api: httpx.AsyncClient, seed: dict[str, int]) -> None:
    assert (await api.post("/api/v1/rules", json=rule_body())).status_code == 201
    duplicate = await api.post("/api/v1/rules", json=rule_body())
    assert duplicate.status_code == 409
    assert duplicate.json()["error"] == "Rule with ref 'demo.on_tick' already exists"
    for extra, message in (
        ({"pack_ref": "ghost"}, "Pack 'ghost' not found"),
        ({"action_ref": "demo.ghost"}, "Action 'demo.ghost' not found"),
        ({"trigger_ref": "demo.ghost"}, "Trigger 'demo.ghost' not found"),
    ):
        response = await api.post("/api/v1/rules", json=rule_body("demo.x", **extra))
        assert response.status_code == 404
        assert response.json() == {"error": message, "code": "NOT_FOUND"}
    bad_ref = await api.post("/api/v1/rules", json=rule_body("demo"))
    assert bad_ref.status_code == 422
    assert bad_ref.json()["error"] == "Validation constraint failed: rule_ref_format"
    bad_description = await api.post("/api/v1/rules", json=rule_body("demo.x", description=""))
    assert bad_description.status_code == 422
    assert bad_description.json()["code"] == "VALIDATION_ERROR"


async def test_parameter_validation(api: httpx.AsyncClient, seed: dict[str, int], platform: Platform) -> None:
    missing = await api.post("/api/v1/rules", json=rule_body(action_params={"count": 2}))
    assert missing.status_code == 422
    assert missing.json() == {
        "error": "Invalid parameters for action 'demo.notify': 'to' is a required property",
        "code": "VALIDATION_ERROR",
    }
    wrong_type = await api.post("/api/v1/rules", json=rule_body(action_params={"to": "x", "count": "many"}))
    assert wrong_type.json()["error"] == (
        "Invalid parameters for action 'demo.notify': 'many' is not of type 'integer' at /count"
    )
    # Trigger params are validated first.
    both_bad = await api.post(
        "/api/v1/rules", json=rule_body(trigger_params={"interval": 0}, action_params={})
    )
    assert both_bad.status_code == 422
    assert both_bad.json()["error"].startswith("Invalid parameters for trigger 'demo.tick': 0 is less than")
    templated = await api.post(
        "/api/v1/rules", json=rule_body(trigger_params={"interval": "{{ pack.config.n }}"})
    )
    assert templated.status_code == 201
    async with platform.db.session() as session:
        assert (await session.execute(sa.select(sa.func.count()).select_from(models.Rule))).scalar_one() == 1


async def test_get_update_semantics_and_messages(
    api: httpx.AsyncClient, seed: dict[str, int], platform: Platform, messages: list[Envelope]
) -> None:
    created = (await api.post("/api/v1/rules", json=rule_body())).json()["data"]
    assert (await api.get("/api/v1/rules/demo.on_tick")).json() == {"data": created}
    assert (await api.get("/api/v1/rules/demo.nope")).json()["error"] == "Rule 'demo.nope' not found"

    empty = (await api.put("/api/v1/rules/demo.on_tick", json={"label": None})).json()
    assert empty["message"] == "Rule updated successfully"
    assert empty["data"] == created

    relabeled = (await api.put("/api/v1/rules/demo.on_tick", json={"label": "Renamed"})).json()["data"]
    assert relabeled["label"] == "Renamed"
    assert relabeled["updated"] > created["updated"]

    invalid = await api.put("/api/v1/rules/demo.on_tick", json={"action_params": {"to": 5}})
    assert invalid.status_code == 422
    assert (
        invalid.json()["error"]
        == "Invalid parameters for action 'demo.notify': 5 is not of type 'string' at /to"
    )
    bad_trigger = await api.put("/api/v1/rules/demo.on_tick", json={"trigger_params": {}})
    assert bad_trigger.json()["error"].startswith("Invalid parameters for trigger 'demo.tick'")

    retuned = (await api.put("/api/v1/rules/demo.on_tick", json={"trigger_params": {"interval": 9}})).json()
    assert retuned["data"]["trigger_params"] == {"interval": 9}
    off = (await api.put("/api/v1/rules/demo.on_tick", json={"enabled": False})).json()["data"]
    assert off["enabled"] is False
    # A disabled rule whose params change publishes nothing.
    await api.put("/api/v1/rules/demo.on_tick", json={"trigger_params": {"interval": 10}})
    on = (await api.put("/api/v1/rules/demo.on_tick", json={"enabled": True})).json()["data"]
    assert on["enabled"] is True
    await settle(platform)
    kinds = [(m.message_type, m.payload.get("trigger_params")) for m in messages]
    assert kinds == [
        ("RuleCreated", {"interval": 5}),
        ("RuleEnabled", {"interval": 9}),
        ("RuleDisabled", None),
        ("RuleEnabled", {"interval": 10}),
    ]
    assert messages[2].payload == {
        "rule_id": created["id"],
        "rule_ref": "demo.on_tick",
        "trigger_ref": "demo.tick",
    }


async def test_enable_disable_and_delete_publish(
    api: httpx.AsyncClient, seed: dict[str, int], platform: Platform, messages: list[Envelope]
) -> None:
    rule_id = (await api.post("/api/v1/rules", json=rule_body(enabled=False))).json()["data"]["id"]
    enabled = await api.post("/api/v1/rules/demo.on_tick/enable")
    assert enabled.status_code == 200
    assert enabled.json()["message"] == "Rule enabled successfully"
    assert enabled.json()["data"]["enabled"] is True
    disabled = (await api.post("/api/v1/rules/demo.on_tick/disable")).json()
    assert disabled["message"] == "Rule disabled successfully"
    assert disabled["data"]["enabled"] is False
    assert (await api.post("/api/v1/rules/demo.nope/enable")).status_code == 404
    await api.post("/api/v1/rules/demo.on_tick/enable")

    async with platform.db.transaction() as session:
        session.add(
            models.Event(
                trigger=seed["trigger"], trigger_ref="demo.tick", rule=rule_id, rule_ref="demo.on_tick"
            )
        )
        session.add(
            models.Enforcement(rule=rule_id, rule_ref="demo.on_tick", trigger_ref="demo.tick", payload={})
        )
    deleted = await api.delete("/api/v1/rules/demo.on_tick")
    assert deleted.status_code == 200
    assert deleted.json() == {"success": True, "message": "Rule 'demo.on_tick' deleted successfully"}
    assert (await api.delete("/api/v1/rules/demo.on_tick")).status_code == 404
    await settle(platform)
    assert [m.message_type for m in messages] == [
        "RuleCreated",
        "RuleEnabled",
        "RuleDisabled",
        "RuleEnabled",
        "RuleDisabled",
    ]
    assert messages[1].payload == {
        "rule_id": rule_id,
        "rule_ref": "demo.on_tick",
        "trigger_ref": "demo.tick",
        "trigger_params": {"interval": 5},
    }
    async with platform.db.session() as session:
        event = (await session.execute(sa.select(models.Event))).scalar_one()
        enforcement = (await session.execute(sa.select(models.Enforcement))).scalar_one()
    assert (event.rule, event.rule_ref) == (None, "demo.on_tick")
    assert (enforcement.rule, enforcement.rule_ref) == (None, "demo.on_tick")


async def test_deleting_a_disabled_rule_publishes_nothing(
    api: httpx.AsyncClient, seed: dict[str, int], platform: Platform, messages: list[Envelope]
) -> None:
    await api.post("/api/v1/rules", json=rule_body(enabled=False))
    assert (await api.delete("/api/v1/rules/demo.on_tick")).status_code == 200
    await settle(platform)
    assert [m.message_type for m in messages] == ["RuleCreated"]


async def test_lists(api: httpx.AsyncClient, seed: dict[str, int]) -> None:
    await api.post("/api/v1/rules", json=rule_body("demo.b"))
    await api.post("/api/v1/rules", json=rule_body("demo.a", enabled=False))
    await api.post(
        "/api/v1/rules",
        json=rule_body(
            "demo.c", action_ref="demo.other", trigger_ref="demo.loose", action_params={}, trigger_params={}
        ),
    )
    everything = (await api.get("/api/v1/rules")).json()
    assert [r["ref"] for r in everything["data"]] == ["demo.a", "demo.b", "demo.c"]
    assert "conditions" not in everything["data"][0]
    assert everything["data"][0]["action_params"] == {"to": "ops", "count": "{{ event.payload.n }}"}
    enabled = (await api.get("/api/v1/rules/enabled")).json()
    assert [r["ref"] for r in enabled["data"]] == ["demo.b", "demo.c"]
    paged = (await api.get("/api/v1/rules", params={"page": 2, "page_size": 2})).json()
    assert [r["ref"] for r in paged["data"]] == ["demo.c"]
    assert paged["pagination"]["total_pages"] == 2
    assert [r["ref"] for r in (await api.get("/api/v1/packs/demo/rules")).json()["data"]] == [
        "demo.a",
        "demo.b",
        "demo.c",
    ]
    assert (await api.get("/api/v1/packs/ghost/rules")).status_code == 404
    by_action = (await api.get("/api/v1/actions/demo.notify/rules")).json()
    assert [r["ref"] for r in by_action["data"]] == ["demo.a", "demo.b"]
    missing_action = await api.get("/api/v1/actions/demo.ghost/rules")
    assert missing_action.status_code == 404
    assert missing_action.json()["error"] == "Action 'demo.ghost' not found"
    by_trigger = (await api.get("/api/v1/triggers/demo.loose/rules")).json()
    assert [r["ref"] for r in by_trigger["data"]] == ["demo.c"]
    assert by_trigger["pagination"]["total_items"] == 1
    assert (await api.get("/api/v1/triggers/demo.ghost/rules")).json()[
        "error"
    ] == "Trigger 'demo.ghost' not found"
