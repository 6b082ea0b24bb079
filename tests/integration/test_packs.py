"""Pack routes (docs/api.md; docs/packs.md) through the HTTP API: CRUD and registration.

The pack helpers here serve test_packs_upload (installation and archive upload) too.
"""

from __future__ import annotations

import io
import tarfile
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from attune.db import models
from attune.platform import Platform

PACKS = "/api/v1/packs"


def write_pack(
    root: Path,
    ref: str = "demo",
    *,
    version: str = "1.0.0",
    actions: tuple[str, ...] = ("hello",),
    triggers: tuple[str, ...] = ("ping",),
    runner: str = "shell",
    extra: str = "",
) -> Path:
    """A small pack directory ``root/ref`` with shell actions and triggers."""
    pack = root / ref
    (pack / "actions").mkdir(parents=True, exist_ok=True)
    (pack / "triggers").mkdir(exist_ok=True)
    (pack / "pack.yaml").write_text(f'ref: {ref}\nlabel: "Demo Pack"\nversion: "{version}"\n{extra}')
    for name in actions:
        (pack / "actions" / f"{name}.yaml").write_text(
            f"name: {name}\nrunner_type: {runner}\nentry_point: {name}.sh\n"
            "parameters:\n  who:\n    type: string\n"
        )
        (pack / "actions" / f"{name}.sh").write_text("echo hi\n")
    for name in triggers:
        (pack / "triggers" / f"{name}.yaml").write_text(f"name: {name}\n")
    return pack


def tar_gz(source: Path, *, top_level: str | None) -> bytes:
    """The directory ``source`` as a .tar.gz, inside ``top_level`` or at the archive root."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(source.rglob("*")):
            rel = path.relative_to(source).as_posix()
            tar.add(path, arcname=f"{top_level}/{rel}" if top_level else rel, recursive=False)
    return buffer.getvalue()


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


async def rows(platform: Platform, model: type[Any], *where: Any) -> list[Any]:
    async with platform.db.session() as session:
        result = await session.execute(sa.select(model).where(*where).order_by(model.__table__.c.ref))
        return list(result.scalars())


async def register(api: httpx.AsyncClient, path: Path | str, **extra: Any) -> httpx.Response:
    return await api.post(f"{PACKS}/register", json={"path": str(path), **extra})


# -- CRUD ------------------------------------------------------------------------------------


async def test_create_get_and_list_packs(api: httpx.AsyncClient) -> None:
    body = {
        "ref": "slack",
        "label": "Slack",
        "version": "1.2.0-beta.1+build.5",
        "conf_schema": {"token": {"type": "string"}, "retries": {"type": "integer", "default": 3}},
        "config": {"token": "abc"},
        "tags": ["chat"],
    }
    created = await api.post(PACKS, json=body)
    assert created.status_code == 201
    assert created.json()["message"] == "Pack created successfully"
    data = created.json()["data"]
    assert data["config"] == {"token": "abc", "retries": 3}  # schema default filled in
    assert data["description"] is None and data["is_standard"] is False
    assert data["created"].endswith("Z")
    assert set(data) == {
        "id", "ref", "label", "description", "version", "tags", "is_standard", "created", "updated",
        "conf_schema", "config", "meta", "runtime_deps", "dependencies",
    }  # fmt: skip
    await api.post(PACKS, json={"ref": "aws", "label": "AWS", "version": "0.1.0"})

    fetched = await api.get(f"{PACKS}/slack")
    assert fetched.status_code == 200 and fetched.json() == {"data": data}

    listed = await api.get(PACKS, params={"page_size": 1, "page": 2})
    assert [p["ref"] for p in listed.json()["data"]] == ["slack"]
    assert listed.json()["pagination"]["total_items"] == 2
    assert "config" not in listed.json()["data"][0]


INVALID_CREATES: list[tuple[dict[str, Any], str, str]] = [
    ({"ref": "Bad"}, "UNPROCESSABLE_ENTITY", "Validation constraint failed: pack_ref_format"),
    ({"ref": "my.pack"}, "UNPROCESSABLE_ENTITY", "Validation constraint failed: pack_ref_format"),
    ({"ref": "x"}, "UNPROCESSABLE_ENTITY", "Validation constraint failed: pack_ref_format"),
    (
        {"version": "1.0"},
        "UNPROCESSABLE_ENTITY",
        "Validation constraint failed: pack_version_semver",
    ),
    ({"label": ""}, "VALIDATION_ERROR", "Validation failed: label:"),
    (
        {"conf_schema": {"port": {"type": "integer", "required": True}}, "config": {"port": "x"}},
        "VALIDATION_ERROR",
        "Invalid config for pack 'demo': 'x' is not of type 'integer' at /port",
    ),
    (
        {"conf_schema": {"port": {"type": "integer", "required": True}}},
        "VALIDATION_ERROR",
        "Invalid config for pack 'demo': 'port' is a required property",
    ),
]


async def test_create_pack_rejects_invalid_bodies(api: httpx.AsyncClient, platform: Platform) -> None:
    for patch, code, message in INVALID_CREATES:
        response = await api.post(PACKS, json={"ref": "demo", "label": "Demo", "version": "1.0.0", **patch})
        assert response.status_code == 422, patch
        assert response.json()["code"] == code
        assert response.json()["error"].startswith(message)
    assert await rows(platform, models.Pack) == []


async def test_create_duplicate_pack_conflicts(api: httpx.AsyncClient) -> None:
    body = {"ref": "demo", "label": "Demo", "version": "1.0.0"}
    assert (await api.post(PACKS, json=body)).status_code == 201
    response = await api.post(PACKS, json=body)
    assert response.status_code == 409
    assert response.json() == {"error": "Pack with ref 'demo' already exists", "code": "CONFLICT"}


async def test_update_pack(api: httpx.AsyncClient) -> None:
    body = {"ref": "demo", "label": "Demo", "version": "1.0.0", "conf_schema": {"n": {"type": "integer"}}}
    original = (await api.post(PACKS, json=body)).json()["data"]

    unchanged = await api.put(f"{PACKS}/demo", json={})
    assert unchanged.status_code == 200
    assert unchanged.json()["message"] == "Pack updated successfully"
    assert unchanged.json()["data"] == original  # `updated` not bumped

    updated = await api.put(
        f"{PACKS}/demo", json={"label": "Renamed", "description": None, "config": {"n": 2}}
    )
    data = updated.json()["data"]
    assert (data["label"], data["description"], data["config"]) == ("Renamed", None, {"n": 2})
    assert datetime.fromisoformat(data["updated"]) > datetime.fromisoformat(original["updated"])

    bad = await api.put(f"{PACKS}/demo", json={"config": {"n": "two"}})
    assert bad.status_code == 422 and bad.json()["code"] == "VALIDATION_ERROR"
    assert (await api.get(f"{PACKS}/demo")).json()["data"]["config"] == {"n": 2}

    missing = await api.put(f"{PACKS}/nope", json={"label": "x"})
    assert missing.status_code == 404
    assert missing.json() == {"error": "Pack 'nope' not found", "code": "NOT_FOUND"}


async def test_delete_pack_cascades_and_removes_its_directory(
    api: httpx.AsyncClient, platform: Platform, packs_dir: Path
) -> None:
    pack_dir = write_pack(packs_dir)
    assert (await register(api, pack_dir)).status_code == 201
    assert [a.ref for a in await rows(platform, models.Action)] == ["demo.hello"]

    response = await api.delete(f"{PACKS}/demo")
    assert response.status_code == 200
    assert response.json() == {"success": True, "message": "Pack 'demo' deleted successfully"}
    assert await rows(platform, models.Action) == []
    assert await rows(platform, models.Trigger) == []
    assert not pack_dir.exists()
    assert (await api.get(f"{PACKS}/demo")).status_code == 404
    assert (await api.delete(f"{PACKS}/demo")).status_code == 404


async def test_delete_keeps_files_of_a_pack_registered_outside_packs_base_dir(
    api: httpx.AsyncClient, tmp_path: Path
) -> None:
    pack_dir = write_pack(tmp_path / "elsewhere")
    assert (await register(api, pack_dir)).status_code == 201
    assert (await api.delete(f"{PACKS}/demo")).status_code == 200
    assert (pack_dir / "pack.yaml").is_file()


async def test_system_pack_cannot_be_deleted(api: httpx.AsyncClient, packs_dir: Path) -> None:
    assert (await register(api, packs_dir / "core", skip_tests=True)).status_code == 201
    response = await api.delete(f"{PACKS}/core")
    assert response.status_code == 409
    assert response.json()["code"] == "CONFLICT"
    assert (await api.get(f"{PACKS}/core")).status_code == 200
    assert (packs_dir / "core" / "pack.yaml").is_file()


# -- registration ----------------------------------------------------------------------------


async def test_register_core_pack(api: httpx.AsyncClient, platform: Platform, packs_dir: Path) -> None:
    response = await register(api, packs_dir / "core", skip_tests=True)
    assert response.status_code == 201
    assert response.json()["message"] == "Pack registered successfully"
    data = response.json()["data"]
    assert (data["ref"], data["version"], data["is_standard"]) == ("core", "1.0.0", True)
    assert data["config"] == {"max_action_timeout": 300, "enable_debug_logging": False}
    # The PackResponse fields and, for clients that read them, pack/tests_skipped/test_result.
    extra = ("pack", "tests_skipped", "test_result", "warnings")
    assert data["pack"] == {k: v for k, v in data.items() if k not in extra}
    assert (data["tests_skipped"], data["test_result"]) == (True, None)

    actions = {a.ref for a in await rows(platform, models.Action)}
    assert {"core.echo", "core.noop", "core.sleep", "core.http_request"} <= actions
    triggers = [t.ref for t in await rows(platform, models.Trigger)]
    assert triggers == ["core.crontimer", "core.datetimetimer", "core.intervaltimer"]
    echo = (await rows(platform, models.Action, models.Action.ref == "core.echo"))[0]
    shell = (await rows(platform, models.Runtime, models.Runtime.ref == "core.shell"))[0]
    assert (echo.runtime, echo.is_adhoc, echo.pack_ref) == (shell.id, False, "core")


async def test_register_existing_pack_needs_force(api: httpx.AsyncClient, packs_dir: Path) -> None:
    assert (await register(api, packs_dir / "core", skip_tests=True)).status_code == 201
    response = await register(api, packs_dir / "core", skip_tests=True)
    assert response.status_code == 409
    assert response.json() == {
        "error": "Pack 'core' already exists. Use force=true to reinstall.",
        "code": "CONFLICT",
    }


async def test_force_reregister_is_idempotent(
    api: httpx.AsyncClient, platform: Platform, packs_dir: Path
) -> None:
    first = (await register(api, packs_dir / "core", skip_tests=True)).json()["data"]
    before = {a.ref: (a.id, a.updated) for a in await rows(platform, models.Action)}
    triggers_before = {t.ref: t.id for t in await rows(platform, models.Trigger)}

    again = await register(api, packs_dir / "core", skip_tests=True, force=True)
    assert again.status_code == 201
    assert again.json()["data"] == first  # same id, `updated` untouched
    assert {a.ref: (a.id, a.updated) for a in await rows(platform, models.Action)} == before
    assert {t.ref: t.id for t in await rows(platform, models.Trigger)} == triggers_before


async def test_force_reregister_applies_changes_and_removes_dropped_components(
    api: httpx.AsyncClient, platform: Platform, tmp_path: Path
) -> None:
    pack_dir = write_pack(tmp_path, actions=("hello", "bye"), triggers=("ping", "pong"))
    assert (await register(api, pack_dir)).status_code == 201
    hello_id = (await rows(platform, models.Action, models.Action.ref == "demo.hello"))[0].id

    (pack_dir / "actions" / "bye.yaml").unlink()
    (pack_dir / "triggers" / "pong.yaml").unlink()
    (pack_dir / "pack.yaml").write_text('ref: demo\nlabel: "Demo v2"\nversion: "1.1.0"\n')
    response = await register(api, pack_dir, force=True)
    assert response.status_code == 201
    assert (response.json()["data"]["label"], response.json()["data"]["version"]) == ("Demo v2", "1.1.0")
    assert [(a.ref, a.id) for a in await rows(platform, models.Action)] == [("demo.hello", hello_id)]
    assert [t.ref for t in await rows(platform, models.Trigger)] == ["demo.ping"]


async def test_adhoc_rule_survives_force_reregister(
    api: httpx.AsyncClient, platform: Platform, tmp_path: Path
) -> None:
    pack_dir = write_pack(tmp_path)
    pack_id = (await register(api, pack_dir)).json()["data"]["id"]
    action = (await rows(platform, models.Action))[0]
    trigger = (await rows(platform, models.Trigger))[0]
    async with platform.db.transaction() as session:
        session.add(
            models.Rule(
                ref="demo.adhoc",
                pack=pack_id,
                pack_ref="demo",
                label="Ad hoc",
                description="made through the API",
                action=action.id,
                action_ref=action.ref,
                trigger=trigger.id,
                trigger_ref=trigger.ref,
                enabled=True,
                is_adhoc=True,
            )
        )

    assert (await register(api, pack_dir, force=True)).status_code == 201
    (rule,) = await rows(platform, models.Rule)
    assert (rule.ref, rule.action, rule.trigger) == ("demo.adhoc", action.id, trigger.id)


async def test_workflow_companion_action_survives_force_reregister(
    api: httpx.AsyncClient, platform: Platform, tmp_path: Path
) -> None:
    pack_dir = write_pack(tmp_path)
    pack_id = (await register(api, pack_dir)).json()["data"]["id"]
    async with platform.db.transaction() as session:
        workflow = models.WorkflowDefinition(
            ref="demo.flow", pack=pack_id, pack_ref="demo", label="Flow", version="1.0.0", definition={}
        )
        session.add(workflow)
        await session.flush()
        session.add(
            models.Action(
                ref="demo.flow",
                pack=pack_id,
                pack_ref="demo",
                label="Flow",
                description="",
                entrypoint="workflow",
                workflow_def=workflow.id,
                is_adhoc=False,
            )
        )

    assert (await register(api, pack_dir, force=True)).status_code == 201
    assert [a.ref for a in await rows(platform, models.Action)] == ["demo.flow", "demo.hello"]


async def test_register_resolves_relative_paths(
    api: httpx.AsyncClient, tmp_path: Path, packs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workdir = tmp_path / "work"
    write_pack(workdir / "src", ref="fromcwd")
    write_pack(packs_dir, ref="frombase")
    monkeypatch.chdir(workdir)

    assert (await register(api, "src/fromcwd")).status_code == 201  # the cwd first
    assert (await register(api, "frombase")).status_code == 201  # then packs_base_dir

    missing = await register(api, "nowhere/to/be/found")
    assert missing.status_code == 400
    assert missing.json() == {
        "error": "Pack directory does not exist: nowhere/to/be/found",
        "code": "BAD_REQUEST",
    }


async def test_register_directory_without_pack_yaml(api: httpx.AsyncClient, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    response = await register(api, tmp_path / "empty")
    assert response.status_code == 400
    assert "pack.yaml" in response.json()["error"]


async def test_malformed_pack_is_rejected_and_nothing_is_registered(
    api: httpx.AsyncClient, platform: Platform, tmp_path: Path
) -> None:
    pack_dir = write_pack(tmp_path, actions=("hello", "broken"))
    (pack_dir / "actions" / "broken.yaml").write_text("name: broken\nentry_point: broken.sh\ntimeout: soon\n")
    response = await register(api, pack_dir)
    assert response.status_code == 422
    error = response.json()["error"]
    assert "actions/broken.yaml" in error and "timeout" in error
    assert await rows(platform, models.Pack) == []
    assert await rows(platform, models.Action) == []


async def test_register_stages_pack_registered_for_environment_runtimes(
    api: httpx.AsyncClient, platform: Platform, packs_dir: Path, tmp_path: Path
) -> None:
    platform.relay.pause()  # keep the staged rows in the table to read them
    assert (await register(api, packs_dir / "core", skip_tests=True)).status_code == 201
    pack_id = (await register(api, write_pack(tmp_path, runner="python"))).json()["data"]["id"]
    async with platform.db.session() as session:
        messages = (
            await session.execute(
                sa.select(models.OutboxMessage).where(models.OutboxMessage.message_type == "PackRegistered")
            )
        ).scalars()
        payloads = [m.body["payload"] for m in messages]
    assert {
        "pack_id": pack_id,
        "pack_ref": "demo",
        "version": "1.0.0",
        "runtime_names": ["python"],
    } in payloads


async def test_register_batch_reports_successes_and_failures(
    api: httpx.AsyncClient, packs_dir: Path, tmp_path: Path
) -> None:
    good = write_pack(tmp_path)
    response = await api.post(f"{PACKS}/register-batch", json={"pack_paths": [str(good), "/no/such/dir"]})
    assert response.status_code == 200
    data = response.json()["data"]
    (registered,) = data["registered_packs"]
    assert (registered["pack_ref"], registered["pack_version"]) == ("demo", "1.0.0")
    assert registered["components_registered"]["actions"] == 1
    assert registered["validation_results"] == {"valid": True, "errors": []}
    assert data["failed_packs"] == [
        {
            "pack_ref": "unknown",
            "pack_path": "/no/such/dir",
            "error": "Pack directory does not exist: /no/such/dir",
            "error_stage": "registration",
        }
    ]
    assert (data["summary"]["total_packs"], data["summary"]["success_count"]) == (2, 1)
    assert data["summary"]["failure_count"] == 1
