"""/api/v1/sensors (docs/api.md)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from attune.db import models
from attune.platform import Platform


@pytest.fixture
async def seed(platform: Platform) -> dict[str, int]:
    """Pack ``demo``, runtime ``core.native`` and triggers ``demo.tick`` / ``demo.tock``."""
    async with platform.db.transaction() as session:
        pack = models.Pack(ref="demo", label="Demo", version="1.0.0")
        native = models.Runtime(ref="core.native", name="Native", distributions={})
        session.add_all([pack, native])
        await session.flush()
        tick = models.Trigger(ref="demo.tick", pack=pack.id, pack_ref="demo", label="Tick", enabled=True)
        tock = models.Trigger(ref="demo.tock", pack=pack.id, pack_ref="demo", label="Tock", enabled=True)
        session.add_all([tick, tock])
        await session.flush()
        return {"pack": pack.id, "runtime": native.id, "tick": tick.id, "tock": tock.id}


def sensor_body(ref: str = "demo.timer", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "ref": ref,
        "pack_ref": "demo",
        "label": "Timer",
        "description": "Fires ticks",
        "entrypoint": "timer",
        "runtime_ref": "core.native",
        "trigger_ref": "demo.tick",
    }
    body.update(extra)
    return body


async def test_create_shape_omits_config(api: httpx.AsyncClient, seed: dict[str, int]) -> None:
    response = await api.post("/api/v1/sensors", json=sensor_body(config={"secret": "x"}, param_schema={}))
    assert response.status_code == 201
    body = response.json()
    assert body["message"] == "Sensor created successfully"
    data = body["data"]
    assert "config" not in data
    assert data["pack"] == seed["pack"]
    assert (data["runtime"], data["runtime_ref"]) == (seed["runtime"], "core.native")
    assert (data["trigger"], data["trigger_ref"]) == (seed["tick"], "demo.tick")
    assert data["enabled"] is True
    assert data["entrypoint"] == "timer"
    assert data["param_schema"] == {}


async def test_create_errors(api: httpx.AsyncClient, seed: dict[str, int]) -> None:
    assert (await api.post("/api/v1/sensors", json=sensor_body())).status_code == 201
    duplicate = await api.post("/api/v1/sensors", json=sensor_body())
    assert duplicate.status_code == 409
    assert duplicate.json()["error"] == "Sensor with ref 'demo.timer' already exists"
    cases = [
        ({"pack_ref": "ghost"}, "Pack 'ghost' not found"),
        ({"runtime_ref": "core.cobol"}, "Runtime 'core.cobol' not found"),
        ({"trigger_ref": "demo.ghost"}, "Trigger 'demo.ghost' not found"),
    ]
    for extra, message in cases:
        response = await api.post("/api/v1/sensors", json=sensor_body("demo.other", **extra))
        assert response.status_code == 404
        assert response.json() == {"error": message, "code": "NOT_FOUND"}
    bad_ref = await api.post("/api/v1/sensors", json=sensor_body("demo.a.b"))
    assert bad_ref.status_code == 422
    assert bad_ref.json()["error"] == "Validation constraint failed: sensor_ref_format"
    no_description = await api.post("/api/v1/sensors", json=sensor_body("demo.other", description=""))
    assert no_description.status_code == 422
    assert "description" in no_description.json()["error"]
    missing_trigger = sensor_body("demo.other")
    del missing_trigger["trigger_ref"]
    assert (await api.post("/api/v1/sensors", json=missing_trigger)).status_code == 422


async def test_get_update_enable_disable(api: httpx.AsyncClient, seed: dict[str, int]) -> None:
    created = (await api.post("/api/v1/sensors", json=sensor_body())).json()["data"]
    assert (await api.get("/api/v1/sensors/demo.timer")).json() == {"data": created}
    assert (await api.get("/api/v1/sensors/demo.nope")).json()["error"] == "Sensor 'demo.nope' not found"

    same = (await api.put("/api/v1/sensors/demo.timer", json={})).json()
    assert same["message"] == "Sensor updated successfully"
    assert same["data"] == created
    # Runtime, trigger and config cannot change; unknown keys are ignored.
    changed = (
        await api.put(
            "/api/v1/sensors/demo.timer",
            json={"label": "T2", "entrypoint": "t2", "trigger_ref": "demo.tock", "enabled": False},
        )
    ).json()["data"]
    assert (changed["label"], changed["entrypoint"], changed["enabled"]) == ("T2", "t2", False)
    assert changed["trigger_ref"] == "demo.tick"
    assert changed["updated"] > created["updated"]
    assert (await api.put("/api/v1/sensors/demo.timer", json={"entrypoint": ""})).status_code == 422

    enabled = (await api.post("/api/v1/sensors/demo.timer/enable")).json()
    assert enabled["message"] == "Sensor enabled successfully"
    assert enabled["data"]["enabled"] is True
    disabled = (await api.post("/api/v1/sensors/demo.timer/disable")).json()
    assert disabled["message"] == "Sensor disabled successfully"
    assert disabled["data"]["enabled"] is False
    assert (await api.post("/api/v1/sensors/demo.nope/disable")).status_code == 404


async def test_lists(api: httpx.AsyncClient, seed: dict[str, int], platform: Platform) -> None:
    async with platform.db.transaction() as session:
        session.add(models.Pack(ref="other", label="Other", version="1.0.0"))
    await api.post("/api/v1/sensors", json=sensor_body("demo.b"))
    await api.post("/api/v1/sensors", json=sensor_body("demo.a", trigger_ref="demo.tock", enabled=False))
    await api.post("/api/v1/sensors", json=sensor_body("other.c", pack_ref="other"))

    everything = (await api.get("/api/v1/sensors")).json()
    assert [s["ref"] for s in everything["data"]] == ["demo.a", "demo.b", "other.c"]
    assert set(everything["data"][0]) == {
        "id",
        "ref",
        "pack_ref",
        "label",
        "description",
        "trigger_ref",
        "enabled",
        "created",
        "updated",
    }
    enabled = (await api.get("/api/v1/sensors/enabled")).json()
    assert [s["ref"] for s in enabled["data"]] == ["demo.b", "other.c"]
    by_pack = (await api.get("/api/v1/packs/demo/sensors", params={"page_size": 1, "page": 2})).json()
    assert [s["ref"] for s in by_pack["data"]] == ["demo.b"]
    assert by_pack["pagination"]["total_items"] == 2
    assert (await api.get("/api/v1/packs/ghost/sensors")).status_code == 404
    by_trigger = (await api.get("/api/v1/triggers/demo.tick/sensors")).json()
    assert [s["ref"] for s in by_trigger["data"]] == ["demo.b", "other.c"]
    missing = await api.get("/api/v1/triggers/demo.ghost/sensors")
    assert missing.status_code == 404
    assert missing.json()["error"] == "Trigger 'demo.ghost' not found"


async def test_delete_nulls_event_source(
    api: httpx.AsyncClient, seed: dict[str, int], platform: Platform
) -> None:
    sensor_id = (await api.post("/api/v1/sensors", json=sensor_body())).json()["data"]["id"]
    async with platform.db.transaction() as session:
        session.add(
            models.Event(
                trigger=seed["tick"],
                trigger_ref="demo.tick",
                source=sensor_id,
                source_ref="demo.timer",
                payload={},
            )
        )
    response = await api.delete("/api/v1/sensors/demo.timer")
    assert response.status_code == 200
    assert response.json() == {"success": True, "message": "Sensor 'demo.timer' deleted successfully"}
    assert (await api.get("/api/v1/sensors/demo.timer")).status_code == 404
    assert (await api.delete("/api/v1/sensors/demo.timer")).status_code == 404
    async with platform.db.session() as session:
        event = (await session.execute(sa.select(models.Event))).scalar_one()
        assert (event.source, event.source_ref) == (None, "demo.timer")
