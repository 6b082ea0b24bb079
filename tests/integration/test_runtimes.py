"""Runtime routes (an Attune extension) through the HTTP API."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from attune.db import models
from attune.platform import Platform

RUNTIMES = "/api/v1/runtimes"
CORE_RUNTIMES = ["core.native", "core.nodejs", "core.python", "core.shell", "core.stackstorm"]


@pytest.fixture
async def core(api: httpx.AsyncClient, packs_dir: Path) -> dict[str, Any]:
    response = await api.post(
        "/api/v1/packs/register", json={"path": str(packs_dir / "core"), "skip_tests": True}
    )
    assert response.status_code == 201
    data: dict[str, Any] = response.json()["data"]
    return data


@pytest.fixture
async def demo_pack(api: httpx.AsyncClient) -> dict[str, Any]:
    response = await api.post("/api/v1/packs", json={"ref": "demo", "label": "Demo", "version": "1.0.0"})
    assert response.status_code == 201
    data: dict[str, Any] = response.json()["data"]
    return data


def new_runtime(**overrides: Any) -> dict[str, Any]:
    return {"ref": "demo.ruby", "pack_ref": "demo", "name": "Ruby", **overrides}


async def test_list_runtimes(api: httpx.AsyncClient, core: dict[str, Any]) -> None:
    response = await api.get(RUNTIMES)
    assert response.status_code == 200
    data = response.json()["data"]
    assert [r["ref"] for r in data] == CORE_RUNTIMES
    assert response.json()["pagination"]["total_items"] == len(CORE_RUNTIMES)
    assert set(data[0]) == {
        "id", "ref", "pack", "pack_ref", "name", "description", "distributions", "installation",
        "created", "updated",
    }  # fmt: skip
    assert data[0]["pack"] == core["id"] and data[0]["pack_ref"] == "core"

    second = await api.get(RUNTIMES, params={"page": 2, "page_size": 3})
    assert [r["ref"] for r in second.json()["data"]] == ["core.shell", "core.stackstorm"]


async def test_get_runtime_lists_versions_newest_first(api: httpx.AsyncClient, core: dict[str, Any]) -> None:
    response = await api.get(f"{RUNTIMES}/core.python")
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["name"] == "Python"
    assert data["execution_config"]["interpreter"]["binary"] == "python3"
    assert [(v["version"], v["is_default"]) for v in data["versions"]] == [
        ("3.13", False),
        ("3.12", True),
        ("3.11", False),
    ]
    version = data["versions"][0]
    assert set(version) == {
        "id",
        "version",
        "is_default",
        "available",
        "verified_at",
        "execution_config",
        "meta",
    }
    assert version["execution_config"]["interpreter"]["binary"] == "python3.13"

    missing = await api.get(f"{RUNTIMES}/core.cobol")
    assert missing.status_code == 404
    assert missing.json() == {"error": "Runtime 'core.cobol' not found", "code": "NOT_FOUND"}


async def test_list_pack_runtimes(
    api: httpx.AsyncClient, core: dict[str, Any], demo_pack: dict[str, Any]
) -> None:
    assert (await api.post(RUNTIMES, json=new_runtime())).status_code == 201
    core_list = await api.get("/api/v1/packs/core/runtimes")
    assert [r["ref"] for r in core_list.json()["data"]] == CORE_RUNTIMES
    demo_list = await api.get("/api/v1/packs/demo/runtimes")
    assert [r["ref"] for r in demo_list.json()["data"]] == ["demo.ruby"]
    missing = await api.get("/api/v1/packs/nope/runtimes")
    assert missing.status_code == 404
    assert missing.json()["error"] == "Pack 'nope' not found"


async def test_create_runtime(api: httpx.AsyncClient, demo_pack: dict[str, Any]) -> None:
    body = new_runtime(
        description="Ruby scripts",
        distributions={"verification": {"always_available": True}},
        execution_config={"interpreter": {"binary": "ruby", "args": [], "file_extension": ".rb"}},
    )
    response = await api.post(RUNTIMES, json=body)
    assert response.status_code == 201
    assert response.json()["message"] == "Runtime created successfully"
    data = response.json()["data"]
    assert (data["pack"], data["pack_ref"], data["installation"], data["versions"]) == (
        demo_pack["id"],
        "demo",
        None,
        [],
    )
    assert data["execution_config"] == body["execution_config"]
    assert (await api.get(f"{RUNTIMES}/demo.ruby")).json()["data"] == data

    minimal = await api.post(RUNTIMES, json=new_runtime(ref="demo.bare", name="Bare"))
    assert (minimal.json()["data"]["distributions"], minimal.json()["data"]["execution_config"]) == ({}, {})


async def test_create_runtime_rejects_bad_bodies(api: httpx.AsyncClient, demo_pack: dict[str, Any]) -> None:
    for body, status, error in [
        (new_runtime(pack_ref="ghost"), 404, "Pack 'ghost' not found"),
        (new_runtime(ref="demo.Ruby"), 422, "Validation constraint failed: runtime_ref_lowercase"),
        (new_runtime(ref="ruby"), 422, "Validation constraint failed: runtime_ref_format"),
        (new_runtime(ref="demo.ruby.v3"), 422, "Validation constraint failed: runtime_ref_format"),
        (new_runtime(name=""), 422, "Validation failed: name: String should have at least 1 character"),
    ]:
        response = await api.post(RUNTIMES, json=body)
        assert response.status_code == status
        assert response.json()["error"] == error
    assert (await api.get(RUNTIMES)).json()["data"] == []


async def test_create_duplicate_runtime_conflicts(api: httpx.AsyncClient, demo_pack: dict[str, Any]) -> None:
    assert (await api.post(RUNTIMES, json=new_runtime())).status_code == 201
    response = await api.post(RUNTIMES, json=new_runtime())
    assert response.status_code == 409
    assert response.json() == {"error": "Runtime with ref 'demo.ruby' already exists", "code": "CONFLICT"}


async def test_update_runtime(api: httpx.AsyncClient, demo_pack: dict[str, Any]) -> None:
    original = (await api.post(RUNTIMES, json=new_runtime(description="old"))).json()["data"]

    unchanged = await api.put(f"{RUNTIMES}/demo.ruby", json={"description": None})
    assert unchanged.status_code == 200
    assert unchanged.json()["message"] == "Runtime updated successfully"
    assert unchanged.json()["data"] == original

    changed = await api.put(
        f"{RUNTIMES}/demo.ruby",
        json={"name": "Ruby 3", "installation": {"package_managers": ["gem"]}, "ref": "demo.ignored"},
    )
    data = changed.json()["data"]
    assert (data["ref"], data["name"], data["description"]) == ("demo.ruby", "Ruby 3", "old")
    assert data["installation"] == {"package_managers": ["gem"]}
    assert datetime.fromisoformat(data["updated"]) > datetime.fromisoformat(original["updated"])

    assert (await api.put(f"{RUNTIMES}/demo.none", json={"name": "x"})).status_code == 404


async def test_delete_runtime(api: httpx.AsyncClient, platform: Platform, demo_pack: dict[str, Any]) -> None:
    assert (await api.post(RUNTIMES, json=new_runtime())).status_code == 201
    response = await api.delete(f"{RUNTIMES}/demo.ruby")
    assert response.status_code == 200
    assert response.json() == {"success": True, "message": "Runtime 'demo.ruby' deleted successfully"}
    assert (await api.get(f"{RUNTIMES}/demo.ruby")).status_code == 404
    assert (await api.delete(f"{RUNTIMES}/demo.ruby")).status_code == 404


async def test_delete_runtime_used_by_actions_conflicts(
    api: httpx.AsyncClient, platform: Platform, core: dict[str, Any]
) -> None:
    async with platform.db.session() as session:
        shell = sa.select(models.Runtime.id).where(models.Runtime.ref == "core.shell").scalar_subquery()
        used = await session.scalar(
            sa.select(sa.func.count()).select_from(models.Action).where(models.Action.runtime == shell)
        )
    response = await api.delete(f"{RUNTIMES}/core.shell")
    assert response.status_code == 409
    assert response.json() == {
        "error": f"Runtime 'core.shell' is used by {used} action(s)",
        "code": "CONFLICT",
    }
    assert (await api.get(f"{RUNTIMES}/core.shell")).status_code == 200


async def test_delete_runtime_removes_its_sensors_and_versions(
    api: httpx.AsyncClient, platform: Platform, core: dict[str, Any]
) -> None:
    async with platform.db.session() as session:
        before = (await session.execute(sa.select(models.Sensor.ref))).scalars().all()
    assert before == ["core.interval_timer_sensor"]
    response = await api.delete(f"{RUNTIMES}/core.native")
    assert response.status_code == 200
    async with platform.db.session() as session:
        sensors = (await session.execute(sa.select(models.Sensor.ref))).scalars().all()
    assert sensors == []
    python_versions = (await api.get(f"{RUNTIMES}/core.python")).json()["data"]["versions"]
    assert len(python_versions) == 3
    assert (await api.delete(f"{RUNTIMES}/core.python")).status_code == 200
    async with platform.db.session() as session:
        versions = (await session.execute(sa.select(models.RuntimeVersion.version))).scalars().all()
    assert sorted(versions) == ["18", "20", "22"]
