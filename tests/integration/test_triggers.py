"""/api/v1/triggers (docs/api.md)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from attune.db import models
from attune.platform import Platform


@pytest.fixture
async def pack_id(platform: Platform) -> int:
    async with platform.db.transaction() as session:
        pack = models.Pack(ref="demo", label="Demo", version="1.0.0")
        session.add(pack)
        await session.flush()
        return pack.id


def trigger_body(ref: str = "demo.tick", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"ref": ref, "pack_ref": "demo", "label": "Tick"}
    body.update(extra)
    return body


async def test_create_defaults_and_shape(api: httpx.AsyncClient, pack_id: int) -> None:
    response = await api.post("/api/v1/triggers", json=trigger_body(param_schema={"n": {"type": "integer"}}))
    assert response.status_code == 201
    body = response.json()
    assert body["message"] == "Trigger created successfully"
    data = body["data"]
    assert data["pack"] == pack_id
    assert data["pack_ref"] == "demo"
    assert data["enabled"] is True
    assert data["is_adhoc"] is True
    assert data["webhook_enabled"] is False
    assert "webhook_key" not in data
    assert data["description"] is None
    assert data["param_schema"] == {"n": {"type": "integer"}}
    assert data["out_schema"] is None


async def test_create_without_pack_and_errors(api: httpx.AsyncClient, pack_id: int) -> None:
    packless = await api.post("/api/v1/triggers", json={"ref": "adhoc.t", "label": "T", "enabled": False})
    assert packless.status_code == 201
    data = packless.json()["data"]
    assert (data["pack"], data["pack_ref"], data["enabled"]) == (None, None, False)

    duplicate = await api.post("/api/v1/triggers", json={"ref": "adhoc.t", "label": "T"})
    assert duplicate.status_code == 409
    assert duplicate.json()["error"] == "Trigger with ref 'adhoc.t' already exists"
    no_pack = await api.post("/api/v1/triggers", json=trigger_body(pack_ref="ghost"))
    assert no_pack.status_code == 404
    assert no_pack.json() == {"error": "Pack 'ghost' not found", "code": "NOT_FOUND"}
    bad_ref = await api.post("/api/v1/triggers", json=trigger_body("noDot"))
    assert bad_ref.status_code == 422
    assert bad_ref.json()["error"] == "Validation constraint failed: trigger_ref_format"
    long_label = await api.post("/api/v1/triggers", json=trigger_body(label="x" * 256))
    assert long_label.status_code == 422
    assert long_label.json()["code"] == "VALIDATION_ERROR"
    bad_schema = await api.post(
        "/api/v1/triggers", json=trigger_body(param_schema={"n": {"minimum": "zero"}})
    )
    assert bad_schema.status_code == 422
    assert "param_schema" in bad_schema.json()["error"]


async def test_get_update_enable_disable(api: httpx.AsyncClient, pack_id: int) -> None:
    created = (await api.post("/api/v1/triggers", json=trigger_body(description="d"))).json()["data"]
    assert (await api.get("/api/v1/triggers/demo.tick")).json() == {"data": created}
    missing = await api.get("/api/v1/triggers/demo.nope")
    assert missing.status_code == 404
    assert missing.json()["error"] == "Trigger 'demo.nope' not found"

    empty = (await api.put("/api/v1/triggers/demo.tick", json={"description": None})).json()
    assert empty["message"] == "Trigger updated successfully"
    assert empty["data"] == created

    updated = (await api.put("/api/v1/triggers/demo.tick", json={"label": "Tock", "out_schema": {}})).json()[
        "data"
    ]
    assert updated["label"] == "Tock"
    assert updated["out_schema"] == {}
    assert updated["description"] == "d"
    assert updated["updated"] > created["updated"]

    disabled = await api.post("/api/v1/triggers/demo.tick/disable")
    assert disabled.status_code == 200
    assert disabled.json()["message"] == "Trigger disabled successfully"
    assert disabled.json()["data"]["enabled"] is False
    enabled = (await api.post("/api/v1/triggers/demo.tick/enable")).json()
    assert enabled["message"] == "Trigger enabled successfully"
    assert enabled["data"]["enabled"] is True
    assert (await api.post("/api/v1/triggers/demo.nope/enable")).status_code == 404


async def test_lists_enabled_and_by_pack(api: httpx.AsyncClient, pack_id: int) -> None:
    for ref, enabled in (("demo.b", True), ("demo.a", False), ("demo.c", True)):
        await api.post("/api/v1/triggers", json=trigger_body(ref, enabled=enabled))
    await api.post("/api/v1/triggers", json={"ref": "loose.z", "label": "Z"})

    everything = (await api.get("/api/v1/triggers")).json()
    assert [t["ref"] for t in everything["data"]] == ["demo.a", "demo.b", "demo.c", "loose.z"]
    assert set(everything["data"][0]) == {
        "id",
        "ref",
        "pack_ref",
        "label",
        "description",
        "enabled",
        "webhook_enabled",
        "created",
        "updated",
    }
    enabled = (await api.get("/api/v1/triggers/enabled")).json()
    assert [t["ref"] for t in enabled["data"]] == ["demo.b", "demo.c", "loose.z"]
    assert enabled["pagination"]["total_items"] == 3
    first = (await api.get("/api/v1/triggers/enabled", params={"page_size": 1})).json()
    assert [t["ref"] for t in first["data"]] == ["demo.b"]
    assert first["pagination"] == {**first["pagination"], "page_size": 1, "total_pages": 3}

    by_pack = (await api.get("/api/v1/packs/demo/triggers")).json()
    assert [t["ref"] for t in by_pack["data"]] == ["demo.a", "demo.b", "demo.c"]
    assert (await api.get("/api/v1/packs/ghost/triggers")).status_code == 404
    beyond = (await api.get("/api/v1/packs/demo/triggers", params={"page": 5})).json()
    assert beyond["data"] == [] and beyond["pagination"]["total_items"] == 3


async def test_delete_cascades_to_sensors_and_unlinks_rules(
    api: httpx.AsyncClient, pack_id: int, platform: Platform
) -> None:
    trigger_id = (await api.post("/api/v1/triggers", json=trigger_body())).json()["data"]["id"]
    async with platform.db.transaction() as session:
        shell = models.Runtime(ref="core.shell", name="Shell", distributions={})
        action = models.Action(
            ref="demo.act", pack=pack_id, pack_ref="demo", label="A", description="", entrypoint="a"
        )
        session.add_all([shell, action])
        await session.flush()
        session.add(
            models.Sensor(
                ref="demo.s",
                pack=pack_id,
                pack_ref="demo",
                label="S",
                description="s",
                entrypoint="s",
                runtime=shell.id,
                runtime_ref="core.shell",
                trigger=trigger_id,
                trigger_ref="demo.tick",
                enabled=True,
            )
        )
        session.add(
            models.Rule(
                ref="demo.r",
                pack=pack_id,
                pack_ref="demo",
                label="R",
                description="",
                action=action.id,
                action_ref="demo.act",
                trigger=trigger_id,
                trigger_ref="demo.tick",
                enabled=True,
            )
        )
        session.add(models.Event(trigger=trigger_id, trigger_ref="demo.tick", payload={}))
    response = await api.delete("/api/v1/triggers/demo.tick")
    assert response.status_code == 200
    assert response.json() == {"success": True, "message": "Trigger 'demo.tick' deleted successfully"}
    assert (await api.get("/api/v1/triggers/demo.tick")).status_code == 404
    assert (await api.delete("/api/v1/triggers/demo.tick")).status_code == 404
    async with platform.db.session() as session:
        assert (await session.execute(sa.select(models.Sensor))).scalars().all() == []
        rule = (await session.execute(sa.select(models.Rule))).scalar_one()
        assert (rule.trigger, rule.trigger_ref) == (None, "demo.tick")
        event = (await session.execute(sa.select(models.Event))).scalar_one()
        assert (event.trigger, event.trigger_ref) == (None, "demo.tick")
