"""/api/v1/actions (docs/api.md) and the Attune action extensions."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from attune.db import models
from attune.platform import Platform


@pytest.fixture
async def seed(platform: Platform) -> dict[str, int]:
    """A pack ``demo`` and a runtime ``core.shell`` (name ``Shell``)."""
    async with platform.db.transaction() as session:
        pack = models.Pack(ref="demo", label="Demo", version="1.0.0")
        shell = models.Runtime(ref="core.shell", name="Shell", distributions={})
        session.add_all([pack, shell])
        await session.flush()
        return {"pack": pack.id, "runtime": shell.id}


def action_body(ref: str = "demo.hello", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "ref": ref,
        "pack_ref": "demo",
        "label": "Hello",
        "description": "Says hello",
        "entrypoint": "hello.sh",
    }
    body.update(extra)
    return body


async def test_create_returns_201_with_message_and_defaults(
    api: httpx.AsyncClient, seed: dict[str, int]
) -> None:
    response = await api.post("/api/v1/actions", json=action_body(runtime_ref="core.shell"))
    assert response.status_code == 201
    body = response.json()
    assert body["message"] == "Action created successfully"
    data = body["data"]
    assert data["ref"] == "demo.hello"
    assert data["pack"] == seed["pack"]
    assert data["pack_ref"] == "demo"
    assert data["runtime"] == seed["runtime"]
    assert data["is_adhoc"] is True
    assert data["param_schema"] is None and data["out_schema"] is None
    assert data["parameter_delivery"] == "stdin"
    assert data["parameter_format"] == "json"
    assert data["output_format"] == "text"
    assert data["timeout_seconds"] is None
    # Omitted when null, never sent as null.
    assert "runtime_version_constraint" not in data
    assert "workflow_def" not in data
    assert data["created"].endswith("Z")


async def test_create_with_extensions_and_optional_description(
    api: httpx.AsyncClient, seed: dict[str, int]
) -> None:
    body = action_body(
        runtime_ref="shell",
        parameter_delivery="file",
        parameter_format="yaml",
        output_format="jsonl",
        timeout_seconds=30,
        runtime_version_constraint=">=5",
        param_schema={"name": {"type": "string", "required": True}},
    )
    del body["description"]
    response = await api.post("/api/v1/actions", json=body)
    assert response.status_code == 201
    data = response.json()["data"]
    assert data["description"] == ""
    assert data["runtime"] == seed["runtime"]  # resolved by alias-equal name
    assert (data["parameter_delivery"], data["parameter_format"], data["output_format"]) == (
        "file",
        "yaml",
        "jsonl",
    )
    assert data["timeout_seconds"] == 30
    assert data["runtime_version_constraint"] == ">=5"
    assert data["param_schema"] == {"name": {"type": "string", "required": True}}


async def test_create_by_runtime_id_and_unknown_runtimes(
    api: httpx.AsyncClient, seed: dict[str, int]
) -> None:
    ok = await api.post("/api/v1/actions", json=action_body(runtime=seed["runtime"]))
    assert ok.status_code == 201
    assert ok.json()["data"]["runtime"] == seed["runtime"]
    unknown_id = await api.post("/api/v1/actions", json=action_body("demo.other", runtime=99999))
    assert unknown_id.status_code == 422
    assert unknown_id.json() == {
        "error": "Referenced entity does not exist (fk_action_runtime_runtime)",
        "code": "UNPROCESSABLE_ENTITY",
    }
    unknown_ref = await api.post("/api/v1/actions", json=action_body("demo.other", runtime_ref="core.cobol"))
    assert unknown_ref.status_code == 404
    assert unknown_ref.json() == {"error": "Runtime 'core.cobol' not found", "code": "NOT_FOUND"}


async def test_create_errors(api: httpx.AsyncClient, seed: dict[str, int]) -> None:
    assert (await api.post("/api/v1/actions", json=action_body())).status_code == 201
    duplicate = await api.post("/api/v1/actions", json=action_body())
    assert duplicate.status_code == 409
    assert duplicate.json() == {"error": "Action with ref 'demo.hello' already exists", "code": "CONFLICT"}
    no_pack = await api.post("/api/v1/actions", json=action_body("nope.a", pack_ref="nope"))
    assert no_pack.status_code == 404
    assert no_pack.json()["error"] == "Pack 'nope' not found"
    for bad_ref in ("demo", "demo.a.b", "Demo.Upper"):
        bad = await api.post("/api/v1/actions", json=action_body(bad_ref))
        assert bad.status_code == 422, bad_ref
        assert bad.json() == {
            "error": "Validation constraint failed: action_ref_format",
            "code": "UNPROCESSABLE_ENTITY",
        }
    empty_label = await api.post("/api/v1/actions", json=action_body("demo.x", label=""))
    assert empty_label.status_code == 422
    assert empty_label.json()["code"] == "VALIDATION_ERROR"
    assert "label" in empty_label.json()["error"]
    zero_timeout = await api.post("/api/v1/actions", json=action_body("demo.x", timeout_seconds=0))
    assert zero_timeout.status_code == 422
    assert "timeout_seconds" in zero_timeout.json()["error"]
    missing = await api.post("/api/v1/actions", json={"ref": "demo.x"})
    assert missing.status_code == 422
    assert missing.headers["content-type"].startswith("text/plain")
    bad_enum = await api.post("/api/v1/actions", json=action_body("demo.x", output_format="xml"))
    assert bad_enum.status_code == 422


async def test_uncompilable_schemas_are_rejected_naming_the_field(
    api: httpx.AsyncClient, seed: dict[str, int]
) -> None:
    bad_type = await api.post("/api/v1/actions", json=action_body(param_schema={"n": {"type": "strnig"}}))
    assert bad_type.status_code == 422
    assert bad_type.json()["code"] == "VALIDATION_ERROR"
    assert bad_type.json()["error"].startswith("Validation failed: param_schema")
    not_flat = await api.post("/api/v1/actions", json=action_body(out_schema={"n": "string"}))
    assert not_flat.status_code == 422
    assert "out_schema" in not_flat.json()["error"]
    full_form = {"type": "object", "properties": {"n": {"type": "integer"}}}
    assert (await api.post("/api/v1/actions", json=action_body(param_schema=full_form))).status_code == 201


async def test_get_update_and_update_semantics(api: httpx.AsyncClient, seed: dict[str, int]) -> None:
    created = (await api.post("/api/v1/actions", json=action_body(runtime_version_constraint="~1.0"))).json()[
        "data"
    ]
    got = await api.get("/api/v1/actions/demo.hello")
    assert got.status_code == 200
    assert got.json() == {"data": created}
    assert (await api.get("/api/v1/actions/demo.missing")).json() == {
        "error": "Action 'demo.missing' not found",
        "code": "NOT_FOUND",
    }

    empty = await api.put("/api/v1/actions/demo.hello", json={})
    assert empty.status_code == 200
    assert empty.json()["message"] == "Action updated successfully"
    assert empty.json()["data"]["updated"] == created["updated"]

    nulls = await api.put(
        "/api/v1/actions/demo.hello", json={"label": None, "runtime_version_constraint": None}
    )
    assert nulls.json()["data"]["label"] == "Hello"
    assert nulls.json()["data"]["runtime_version_constraint"] == "~1.0"
    assert nulls.json()["data"]["updated"] == created["updated"]

    changed = await api.put(
        "/api/v1/actions/demo.hello",
        json={"label": "Hi", "runtime_ref": "core.shell", "output_format": "json", "ref": "demo.renamed"},
    )
    data = changed.json()["data"]
    assert data["label"] == "Hi"
    assert data["ref"] == "demo.hello"  # refs never change
    assert data["runtime"] == seed["runtime"]
    assert data["output_format"] == "json"
    assert data["updated"] > created["updated"]
    assert (await api.get("/api/v1/actions/demo.hello")).json()["data"]["label"] == "Hi"

    assert (await api.put("/api/v1/actions/demo.nope", json={"label": "x"})).status_code == 404
    assert (await api.put("/api/v1/actions/demo.hello", json={"description": ""})).status_code == 422
    bad_runtime = await api.put("/api/v1/actions/demo.hello", json={"runtime": 424242})
    assert bad_runtime.status_code == 422


async def test_list_pagination_and_pack_listing(
    api: httpx.AsyncClient, seed: dict[str, int], platform: Platform
) -> None:
    async with platform.db.transaction() as session:
        other = models.Pack(ref="other", label="Other", version="1.0.0")
        session.add(other)
    for name in ("c", "a", "b"):
        assert (await api.post("/api/v1/actions", json=action_body(f"demo.{name}"))).status_code == 201
    assert (
        await api.post("/api/v1/actions", json=action_body("other.z", pack_ref="other"))
    ).status_code == 201

    listing = await api.get("/api/v1/actions")
    body = listing.json()
    assert [a["ref"] for a in body["data"]] == ["demo.a", "demo.b", "demo.c", "other.z"]
    assert body["pagination"]["page"] == 1
    assert body["pagination"]["page_size"] == 50
    assert body["pagination"]["total_items"] == 4
    assert body["pagination"]["total_pages"] == 1
    assert "param_schema" not in body["data"][0]  # summaries only

    page2 = (await api.get("/api/v1/actions", params={"page": 2, "page_size": 3})).json()
    assert [a["ref"] for a in page2["data"]] == ["other.z"]
    assert page2["pagination"]["total_pages"] == 2
    beyond = (await api.get("/api/v1/actions", params={"page": 9, "page_size": 3})).json()
    assert beyond["data"] == []
    assert beyond["pagination"]["total_items"] == 4

    by_pack = (await api.get("/api/v1/packs/other/actions")).json()
    assert [a["ref"] for a in by_pack["data"]] == ["other.z"]
    assert by_pack["pagination"]["total_items"] == 1
    missing = await api.get("/api/v1/packs/ghost/actions")
    assert missing.status_code == 404
    assert missing.json()["error"] == "Pack 'ghost' not found"


async def test_delete_keeps_rule_ref_and_drops_queue_stats(
    api: httpx.AsyncClient, seed: dict[str, int], platform: Platform
) -> None:
    action_id = (await api.post("/api/v1/actions", json=action_body())).json()["data"]["id"]
    async with platform.db.transaction() as session:
        trigger = models.Trigger(ref="demo.t", label="T", enabled=True)
        session.add(trigger)
        await session.flush()
        session.add(
            models.Rule(
                ref="demo.r",
                pack=seed["pack"],
                pack_ref="demo",
                label="R",
                description="",
                action=action_id,
                action_ref="demo.hello",
                trigger=trigger.id,
                trigger_ref="demo.t",
                enabled=True,
            )
        )
        session.add(models.QueueStats(action_id=action_id))
    response = await api.delete("/api/v1/actions/demo.hello")
    assert response.status_code == 200
    assert response.json() == {"success": True, "message": "Action 'demo.hello' deleted successfully"}
    assert (await api.get("/api/v1/actions/demo.hello")).status_code == 404
    assert (await api.delete("/api/v1/actions/demo.hello")).status_code == 404
    async with platform.db.session() as session:
        rule = (await session.execute(sa.select(models.Rule))).scalar_one()
        assert (rule.action, rule.action_ref) == (None, "demo.hello")
        assert await session.get(models.QueueStats, action_id) is None


async def test_queue_stats(api: httpx.AsyncClient, seed: dict[str, int], platform: Platform) -> None:
    action_id = (await api.post("/api/v1/actions", json=action_body())).json()["data"]["id"]
    none_yet = await api.get("/api/v1/actions/demo.hello/queue-stats")
    assert none_yet.status_code == 404
    assert none_yet.json() == {
        "error": "No queue statistics available for action 'demo.hello'",
        "code": "NOT_FOUND",
    }
    assert (await api.get("/api/v1/actions/demo.ghost/queue-stats")).json()[
        "error"
    ] == "Action 'demo.ghost' not found"
    async with platform.db.transaction() as session:
        session.add(
            models.QueueStats(
                action_id=action_id,
                queue_length=2,
                active_count=1,
                max_concurrent=3,
                total_enqueued=7,
                total_completed=4,
            )
        )
    data = (await api.get("/api/v1/actions/demo.hello/queue-stats")).json()["data"]
    assert data["action_id"] == action_id
    assert data["action_ref"] == "demo.hello"
    assert (data["queue_length"], data["active_count"], data["max_concurrent"]) == (2, 1, 3)
    assert (data["total_enqueued"], data["total_completed"]) == (7, 4)
    assert data["oldest_enqueued_at"] is None
    assert data["last_updated"].endswith("Z")


async def test_routes_need_a_token(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/actions")
    assert response.status_code == 401
    assert response.json() == {"error": {"code": 401, "message": "Missing authentication token"}}
