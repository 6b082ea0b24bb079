"""Workflow routes (docs/api.md intended), pack workflow registration and run control."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import yaml

from attune.db import models
from attune.db.repos import executions as execution_repo
from attune.platform import Platform
from attune.workflow.engine import WorkflowEngine

FLOW = {
    "tasks": [
        {"name": "first", "action": "core.noop", "next": [{"when": "{{ succeeded() }}", "do": ["second"]}]},
        {"name": "second", "action": "core.noop"},
    ]
}


@pytest.fixture
async def pack(api: httpx.AsyncClient) -> str:
    response = await api.post("/api/v1/packs", json={"ref": "wf", "label": "Workflows", "version": "1.0.0"})
    assert response.status_code == 201, response.text
    return "wf"


def create_body(ref: str = "wf.flow", **extra: Any) -> dict[str, Any]:
    return {"ref": ref, "pack_ref": "wf", "label": "Flow", "version": "1.0.0", "definition": FLOW, **extra}


async def core_noop(platform: Platform) -> None:
    """The tests need ``core.noop`` registered (the ``packs_dir`` fixture holds the core pack)."""
    from attune.packs.register import register_system_packs

    # These tests finish each task by hand: its child must wait ``requested``, not run in the
    # workflow's own step as an in-process core.noop does (docs/performance.md).
    platform.settings.worker.in_process_actions = False
    await register_system_packs(platform)


# -- definitions -----------------------------------------------------------------------------------


async def test_create_stores_the_definition_and_its_companion_action(
    api: httpx.AsyncClient, pack: str, platform: Platform
) -> None:
    body = create_body(param_schema={"who": {"type": "string"}}, tags=["ops"])
    response = await api.post("/api/v1/workflows", json=body)
    assert response.status_code == 201, response.text
    payload = response.json()
    assert payload["message"] == "Workflow created successfully"
    data = payload["data"]
    assert (data["ref"], data["pack_ref"], data["enabled"], data["tags"]) == ("wf.flow", "wf", True, ["ops"])
    # Stored normalised: the document carries ref, label and version.
    assert data["definition"]["ref"] == "wf.flow"
    assert [t["name"] for t in data["definition"]["tasks"]] == ["first", "second"]
    action = (await api.get("/api/v1/actions/wf.flow")).json()["data"]
    assert (action["workflow_def"], action["entrypoint"], action["runtime"]) == (data["id"], "workflow", None)
    assert action["param_schema"] == {"who": {"type": "string"}}

    listed = (await api.get("/api/v1/workflows", params={"tags": "ops,other"})).json()
    assert [w["ref"] for w in listed["data"]] == ["wf.flow"]
    assert (await api.get("/api/v1/workflows", params={"search": "FLO"})).json()["pagination"][
        "total_items"
    ] == 1
    assert (await api.get("/api/v1/packs/wf/workflows")).json()["data"][0]["ref"] == "wf.flow"


async def test_create_conflicts_and_leaves_no_orphan_rows(
    api: httpx.AsyncClient, pack: str, platform: Platform
) -> None:
    assert (await api.post("/api/v1/workflows", json=create_body())).status_code == 201
    again = await api.post("/api/v1/workflows", json=create_body())
    assert again.status_code == 409
    assert again.json()["error"] == "Workflow with ref 'wf.flow' already exists"
    # A plain action already holds the ref: the companion cannot be created, nothing is stored.
    plain = {"ref": "wf.taken", "pack_ref": "wf", "label": "x", "entrypoint": "x.sh"}
    assert (await api.post("/api/v1/actions", json=plain)).status_code == 201
    clash = await api.post("/api/v1/workflows", json=create_body("wf.taken"))
    assert clash.status_code == 409
    async with platform.db.session() as session:
        count = await session.scalar(
            sa.select(sa.func.count()).where(models.WorkflowDefinition.ref == "wf.taken")
        )
    assert count == 0
    assert (await api.post("/api/v1/workflows", json=create_body(pack_ref="nope"))).status_code == 404


async def test_validation_errors_name_the_task_and_field(api: httpx.AsyncClient, pack: str) -> None:
    bad = {"tasks": [{"name": "first", "action": "core.noop", "next": [{"do": "second"}]}]}
    response = await api.post("/api/v1/workflows", json=create_body(definition=bad))
    assert response.status_code == 422
    error = response.json()["error"]
    assert "first" in error and "do" in error


async def test_update_and_delete_keep_the_companion_in_step(api: httpx.AsyncClient, pack: str) -> None:
    await api.post("/api/v1/workflows", json=create_body())
    response = await api.put("/api/v1/workflows/wf.flow", json={"label": "Renamed", "enabled": False})
    assert response.status_code == 200
    assert response.json()["message"] == "Workflow updated successfully"
    assert (response.json()["data"]["label"], response.json()["data"]["enabled"]) == ("Renamed", False)
    assert (await api.get("/api/v1/actions/wf.flow")).json()["data"]["label"] == "Renamed"
    deleted = await api.delete("/api/v1/workflows/wf.flow")
    assert deleted.json() == {"success": True, "message": "Workflow 'wf.flow' deleted successfully"}
    assert (await api.get("/api/v1/actions/wf.flow")).status_code == 404
    assert (await api.get("/api/v1/workflows/wf.flow")).status_code == 404


# -- files -----------------------------------------------------------------------------------------


def file_body(name: str = "deploy", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "pack_ref": "wf",
        "label": "Deploy",
        "version": "1.0.0",
        "definition": FLOW,
        **extra,
    }


async def test_saved_files_land_where_sync_reads_them(
    api: httpx.AsyncClient, pack: str, packs_dir: Path, platform: Platform
) -> None:
    response = await api.post("/api/v1/packs/wf/workflow-files", json=file_body())
    assert response.status_code == 201, response.text
    assert response.json()["message"] == "Workflow file saved and synced successfully"
    path = packs_dir / "wf" / "workflows" / "deploy.yaml"
    saved = yaml.safe_load(path.read_text())
    assert (saved["ref"], saved["label"], saved["version"]) == ("wf.deploy", "Deploy", "1.0.0")
    action = (await api.get("/api/v1/actions/wf.deploy")).json()["data"]
    assert action["entrypoint"] == "workflows/deploy.yaml"
    conflict = await api.post("/api/v1/packs/wf/workflow-files", json=file_body())
    assert conflict.status_code == 409

    updated = await api.put(
        "/api/v1/workflows/wf.deploy/file", json=file_body(label="Deploy v2", version="2.0.0")
    )
    assert updated.status_code == 200
    assert updated.json()["message"] == "Workflow file updated and synced successfully"
    assert yaml.safe_load(path.read_text())["version"] == "2.0.0"
    mismatch = await api.put("/api/v1/workflows/wf.deploy/file", json=file_body(name="other"))
    assert mismatch.status_code == 400

    await core_noop(platform)
    synced = await api.post("/api/v1/packs/wf/workflows/sync")
    assert synced.status_code == 200
    data = synced.json()["data"]
    assert (data["loaded_count"], data["registered_count"], data["errors"]) == (1, 1, [])
    assert data["workflows"][0]["ref_name"] == "wf.deploy"
    assert data["workflows"][0]["created"] is False


@pytest.mark.parametrize("name", ["../escape", "a/b", "..", "x/../../y", "/abs"])
async def test_file_names_escaping_the_pack_are_rejected(
    api: httpx.AsyncClient, pack: str, packs_dir: Path, name: str
) -> None:
    response = await api.post("/api/v1/packs/wf/workflow-files", json=file_body(name))
    assert response.status_code == 400
    assert not [p for p in packs_dir.parent.rglob("escape*")]


async def test_sync_and_validate_report_broken_files(
    api: httpx.AsyncClient, pack: str, packs_dir: Path, platform: Platform
) -> None:
    await core_noop(platform)
    folder = packs_dir / "wf" / "workflows"
    folder.mkdir(parents=True)
    (folder / "good.yaml").write_text(yaml.safe_dump({"label": "Good", "version": "1.0.0", **FLOW}))
    (folder / "bad.yaml").write_text("label: Bad\nversion: '1'\ntasks: []\n")
    unreachable = {
        "label": "U",
        "version": "1.0.0",
        "tasks": [
            {"name": "a", "action": "core.noop"},
            {"name": "b", "action": "core.nothing", "next": [{"do": ["b2"]}]},
            {"name": "b2", "action": "core.noop", "next": [{"do": ["b"]}]},
        ],
    }
    (folder / "loop.yaml").write_text(yaml.safe_dump(unreachable))
    synced = (await api.post("/api/v1/packs/wf/workflows/sync")).json()["data"]
    assert synced["loaded_count"] == 2
    assert sorted(w["ref_name"] for w in synced["workflows"]) == ["wf.good", "wf.loop"]
    assert len(synced["errors"]) == 1 and synced["errors"][0].startswith("workflows/bad.yaml")
    validated = (await api.post("/api/v1/packs/wf/workflows/validate")).json()
    assert validated["message"] == "Pack workflows validated"
    assert validated["data"]["validated_count"] == 3
    assert set(validated["data"]["errors"]) == {"wf.bad", "wf.loop"}


# -- registration from pack files ------------------------------------------------------------------


def write_pack(root: Path, workflows: dict[str, str]) -> Path:
    pack_dir = root / "wfpack"
    (pack_dir / "workflows").mkdir(parents=True)
    (pack_dir / "pack.yaml").write_text("ref: wfpack\nlabel: WF pack\nversion: 1.0.0\n")
    for name, text in workflows.items():
        (pack_dir / "workflows" / f"{name}.yaml").write_text(text)
    return pack_dir


GOOD_FILE = """
ref: wfpack.hello
label: Hello
version: "1.0.0"
parameters:
  who: {type: string, default: world}
tasks:
  - name: greet
    action: core.noop
    input: {message: "hello {{ parameters.who }}"}
"""


async def test_registration_creates_updates_and_removes_workflows(
    api: httpx.AsyncClient, platform: Platform, tmp_path: Path
) -> None:
    await core_noop(platform)
    pack_dir = write_pack(tmp_path, {"hello": GOOD_FILE})
    response = await api.post("/api/v1/packs/register", json={"path": str(pack_dir), "skip_tests": True})
    assert response.status_code == 201, response.text
    workflow = (await api.get("/api/v1/workflows/wfpack.hello")).json()["data"]
    assert workflow["param_schema"] == {"who": {"type": "string", "default": "world"}}
    action = (await api.get("/api/v1/actions/wfpack.hello")).json()["data"]
    assert (action["entrypoint"], action["workflow_def"]) == ("workflows/hello.yaml", workflow["id"])

    (pack_dir / "workflows" / "hello.yaml").unlink()
    (pack_dir / "workflows" / "bye.yaml").write_text(
        GOOD_FILE.replace("hello", "bye").replace("Hello", "Bye")
    )
    again = await api.post(
        "/api/v1/packs/register", json={"path": str(pack_dir), "skip_tests": True, "force": True}
    )
    assert again.status_code == 201, again.text
    assert (await api.get("/api/v1/workflows/wfpack.hello")).status_code == 404
    assert (await api.get("/api/v1/actions/wfpack.hello")).status_code == 404
    assert (await api.get("/api/v1/workflows/wfpack.bye")).status_code == 200


async def test_a_broken_workflow_file_is_skipped_or_rejects_the_pack_with_fail_on_error(
    api: httpx.AsyncClient, tmp_path: Path
) -> None:
    """docs/packs.md: the file is skipped with a warning; ``fail_on_error`` refuses the pack."""
    broken = (
        "label: Broken\nversion: '1.0.0'\ntasks:\n  - name: t\n    action: core.noop\n"
        "    next: [{do: missing}]\n"
    )
    pack_dir = write_pack(tmp_path, {"broken": broken})
    body = {"path": str(pack_dir), "skip_tests": True, "fail_on_error": True}
    response = await api.post("/api/v1/packs/register", json=body)
    assert response.status_code == 422
    assert response.json()["error"].startswith("workflows/broken.yaml")
    assert (await api.get("/api/v1/packs/wfpack")).status_code == 404
    response = await api.post("/api/v1/packs/register", json={**body, "fail_on_error": False})
    assert response.status_code == 201
    assert response.json()["data"]["warnings"][0].startswith("workflows/broken.yaml")
    assert (await api.get("/api/v1/workflows/wfpack.broken")).status_code == 404


# -- runs ------------------------------------------------------------------------------------------


async def start_run(platform: Platform, ref: str) -> tuple[WorkflowEngine, int]:
    engine = WorkflowEngine(platform)
    async with platform.db.transaction() as session:
        action = await session.scalar(sa.select(models.Action).where(models.Action.ref == ref))
        assert action is not None
        execution = await execution_repo.request_execution(
            session, action, {}, box=None, source_service="test"
        )
    await engine.start(execution.id)
    return engine, execution.id


async def children(platform: Platform, parent: int) -> list[models.Execution]:
    async with platform.db.session() as session:
        query = (
            sa.select(models.Execution).where(models.Execution.parent == parent).order_by(models.Execution.id)
        )
        return list((await session.execute(query)).scalars())


async def end_child(platform: Platform, engine: WorkflowEngine, child: int, status: str) -> None:
    async with platform.db.transaction() as session:
        row = await session.get(models.Execution, child)
        assert row is not None
        row.status, row.result = status, {"succeeded": status == "completed"}
    await engine.child_finished(child)


async def test_pause_resume_state_and_cancel_routes(
    api: httpx.AsyncClient, pack: str, platform: Platform
) -> None:
    await core_noop(platform)
    await api.post("/api/v1/workflows", json=create_body())
    engine, run = await start_run(platform, "wf.flow")

    state = (await api.get(f"/api/v1/executions/{run}/workflow")).json()["data"]
    assert (state["status"], state["paused"], state["workflow_ref"]) == ("running", False, "wf.flow")
    assert [(t["name"], t["status"]) for t in state["tasks"]] == [("first", "running")]
    assert (await api.post(f"/api/v1/executions/{run}/resume")).status_code == 409

    paused = await api.post(f"/api/v1/executions/{run}/pause")
    assert paused.status_code == 200, paused.text
    assert (await api.post(f"/api/v1/executions/{run}/pause")).status_code == 409
    [first] = await children(platform, run)
    await end_child(platform, engine, first.id, "completed")
    state = (await api.get(f"/api/v1/executions/{run}/workflow")).json()["data"]
    assert state["paused"] is True
    assert len(await children(platform, run)) == 1  # nothing new starts while paused

    resumed = await api.post(f"/api/v1/executions/{run}/resume")
    assert resumed.status_code == 200
    assert resumed.json()["data"]["paused"] is False
    assert [c.workflow_task_name for c in await children(platform, run)] == ["first", "second"]

    cancelled = await api.post(f"/api/v1/executions/{run}/cancel")
    assert cancelled.status_code == 200
    second = (await children(platform, run))[1]
    assert second.status == "cancelled"
    await engine.child_finished(second.id)
    assert (await api.get(f"/api/v1/executions/{run}")).json()["data"]["status"] == "cancelled"
    assert (await api.post(f"/api/v1/executions/{run}/pause")).status_code == 409


async def test_not_a_workflow(api: httpx.AsyncClient, pack: str, platform: Platform) -> None:
    await core_noop(platform)
    plain = (await api.post("/api/v1/executions/execute", json={"action_ref": "core.noop"})).json()["data"]
    assert (await api.get(f"/api/v1/executions/{plain['id']}/workflow")).status_code == 404
    assert (await api.post(f"/api/v1/executions/{plain['id']}/pause")).status_code == 409
    rerun = await api.post(f"/api/v1/executions/{plain['id']}/rerun", params={"from_failed": "true"})
    assert rerun.status_code == 409
    assert (await api.get("/api/v1/executions/999999/workflow")).status_code == 404


async def test_rerun_route_resumes_a_failed_workflow(
    api: httpx.AsyncClient, pack: str, platform: Platform
) -> None:
    await core_noop(platform)
    await api.post("/api/v1/workflows", json=create_body())
    engine, run = await start_run(platform, "wf.flow")
    [first] = await children(platform, run)
    await end_child(platform, engine, first.id, "failed")
    assert (await api.get(f"/api/v1/executions/{run}")).json()["data"]["status"] == "failed"

    response = await api.post(f"/api/v1/executions/{run}/rerun")
    assert response.status_code == 200, response.text
    assert (response.json()["data"]["id"], response.json()["data"]["status"]) == (run, "running")
    _, again = await children(platform, run)
    assert again.workflow_task_name == "first"
    await end_child(platform, engine, again.id, "completed")
    *_, second = await children(platform, run)
    await end_child(platform, engine, second.id, "completed")
    assert (await api.get(f"/api/v1/executions/{run}")).json()["data"]["status"] == "completed"

    fresh = await api.post(f"/api/v1/executions/{run}/rerun", params={"from_failed": "false"})
    assert fresh.status_code == 201
    assert fresh.json()["data"]["id"] != run


async def test_a_paused_workflows_execution_shows_paused_until_resumed(
    api: httpx.AsyncClient, pack: str, platform: Platform
) -> None:
    await core_noop(platform)
    await api.post("/api/v1/workflows", json=create_body())
    engine, run = await start_run(platform, "wf.flow")

    assert (await api.post(f"/api/v1/executions/{run}/pause")).status_code == 200
    # At once, while its first task still runs (it finishes and is recorded).
    assert (await api.get(f"/api/v1/executions/{run}")).json()["data"]["status"] == "paused"
    listed = (await api.get("/api/v1/executions", params={"status": "paused"})).json()["data"]
    assert [e["id"] for e in listed] == [run]
    [first] = await children(platform, run)
    await end_child(platform, engine, first.id, "completed")
    assert (await api.get(f"/api/v1/executions/{run}")).json()["data"]["status"] == "paused"
    stats = (await api.get("/api/v1/executions/stats")).json()["data"]
    assert stats["paused"] == 1

    assert (await api.post(f"/api/v1/executions/{run}/resume")).status_code == 200
    assert (await api.get(f"/api/v1/executions/{run}")).json()["data"]["status"] == "running"


async def test_a_paused_workflow_can_be_cancelled(
    api: httpx.AsyncClient, pack: str, platform: Platform
) -> None:
    await core_noop(platform)
    await api.post("/api/v1/workflows", json=create_body())
    engine, run = await start_run(platform, "wf.flow")
    assert (await api.post(f"/api/v1/executions/{run}/pause")).status_code == 200
    [first] = await children(platform, run)
    await end_child(platform, engine, first.id, "completed")

    cancelled = await api.post(f"/api/v1/executions/{run}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert (await api.get(f"/api/v1/executions/{run}")).json()["data"]["status"] == "cancelled"


async def test_with_items_wider_than_the_workers_slots_is_warned_about(
    api: httpx.AsyncClient, pack: str, platform: Platform, caplog: pytest.LogCaptureFixture
) -> None:
    """The task asks for 4 items at once; no live worker has a slot: the log says so instead of
    the workers silently capping the workflow's concurrency (docs/workflows.md)."""
    await core_noop(platform)
    definition = {
        "tasks": [
            {"name": "each", "action": "core.noop", "with_items": "{{ [1, 2, 3, 4, 5] }}", "concurrency": 4}
        ]
    }
    body = {"ref": "wf.wide", "pack_ref": "wf", "label": "Wide", "version": "1.0.0", "definition": definition}
    assert (await api.post("/api/v1/workflows", json=body)).status_code == 201
    with caplog.at_level(logging.WARNING, logger="attune.workflow.engine.inline"):
        _engine, run = await start_run(platform, "wf.wide")
    assert len(await children(platform, run)) == 4
    warnings = [r.getMessage() for r in caplog.records if "slot(s)" in r.getMessage()]
    assert len(warnings) == 1 and "runs 4 items at once" in warnings[0], caplog.text


async def test_items_past_the_in_process_budget_run_in_later_steps_each_child_written_once(
    api: httpx.AsyncClient, pack: str, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A step starts at most BUDGET tasks; the items past it are not written at all until a later
    transaction of the engine runs them (no child row waits ``requested`` in between), so each
    child is inserted once, finished, and every item still ends with its own result."""
    from attune.packs.register import register_system_packs
    from attune.workflow.engine import inline
    from attune.workflow.engine import service as engine_service

    await register_system_packs(platform)
    monkeypatch.setattr(inline, "BUDGET", 4)
    seen: list[list[str]] = []
    continue_run = engine_service.continue_run

    async def watching(session: Any, state_id: int, ctx: Any) -> bool:
        rows = await session.execute(
            sa.select(models.Execution.status).where(models.Execution.workflow_execution_id == state_id)
        )
        seen.append(sorted(status for (status,) in rows))
        return await continue_run(session, state_id, ctx)

    monkeypatch.setattr(engine_service, "continue_run", watching)
    words = [f"w{i}" for i in range(11)]
    definition = {
        "tasks": [
            {
                "name": "each",
                "action": "core.echo",
                "with_items": "{{ parameters.words }}",
                "input": {"message": "{{ item }}"},
            }
        ]
    }
    body = {
        "ref": "wf.many",
        "pack_ref": "wf",
        "label": "Many",
        "version": "1.0.0",
        "param_schema": {"words": {"type": "array"}},
        "definition": definition,
    }
    assert (await api.post("/api/v1/workflows", json=body)).status_code == 201, body
    engine = WorkflowEngine(platform)
    async with platform.db.transaction() as session:
        action = await session.scalar(sa.select(models.Action).where(models.Action.ref == "wf.many"))
        assert action is not None
        execution = await execution_repo.request_execution(
            session, action, {"words": words}, box=None, source_service="t"
        )
    await engine.start(execution.id)
    deadline = asyncio.get_running_loop().time() + 30
    parent: models.Execution | None = None
    while asyncio.get_running_loop().time() < deadline:
        async with platform.db.session() as session:
            parent = await session.get(models.Execution, execution.id)
        if parent is not None and parent.status not in ("running", "requested"):
            break
        await asyncio.sleep(0.05)
    assert parent is not None and parent.status == "completed", parent.result if parent else None
    kids = sorted(await children(platform, execution.id), key=lambda c: c.workflow_task["task_index"])
    assert [(c.status, c.result["stdout"], c.workflow_task["counted"]) for c in kids] == [
        ("completed", word, True) for word in words
    ]
    assert all(c.started_at is not None for c in kids)
    # Two later transactions, four items each and then three; before each, only finished
    # children exist: the held items had no row yet.
    assert seen == [["completed"] * 4, ["completed"] * 8]


async def test_children_that_finish_together_are_counted_in_one_step(
    api: httpx.AsyncClient, pack: str, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Five items of a worker-run action finish at once: the run is advanced once for the batch
    (one write of its state), not once per child, and every item is counted exactly once."""
    from attune.workflow.engine import store as engine_module

    await core_noop(platform)
    definition = {"tasks": [{"name": "each", "action": "core.noop", "with_items": "{{ [1, 2, 3, 4, 5] }}"}]}
    body = {
        "ref": "wf.batch",
        "pack_ref": "wf",
        "label": "Batch",
        "version": "1.0.0",
        "definition": definition,
    }
    assert (await api.post("/api/v1/workflows", json=body)).status_code == 201
    engine, run = await start_run(platform, "wf.batch")
    kids = await children(platform, run)
    assert len(kids) == 5
    async with platform.db.transaction() as session:
        for kid in kids:
            row = await session.get(models.Execution, kid.id)
            assert row is not None
            row.status, row.result = "completed", {"succeeded": True}
    writes = 0
    persist = engine_module.persist

    async def counting(*args: Any, **kwargs: Any) -> None:
        nonlocal writes
        writes += 1
        await persist(*args, **kwargs)

    monkeypatch.setattr(engine_module, "persist", counting)
    await asyncio.gather(*(engine.child_finished(kid.id) for kid in kids), engine.child_finished(kids[0].id))
    async with platform.db.session() as session:
        parent = await session.get(models.Execution, run)
    assert parent is not None and parent.status == "completed", parent.result if parent else None
    assert writes <= 2, writes  # the first completion's step, then one for everything that queued
    async with platform.db.session() as session:
        counted = [
            (await session.get(models.Execution, kid.id)).workflow_task["counted"]  # type: ignore[union-attr]
            for kid in kids
        ]
    assert counted == [True] * 5


async def test_a_workflow_history_records_each_status_change_once(
    api: httpx.AsyncClient, pack: str, platform: Platform
) -> None:
    """The run's own history: created ``requested``, then ``running``, then ``completed``, one
    row each (the engine's compare-and-set writes are not written a second time by the flush)."""
    from attune.packs.register import register_system_packs

    await register_system_packs(platform)
    await api.post("/api/v1/workflows", json=create_body())
    _engine, run = await start_run(platform, "wf.flow")
    response = await api.get(f"/api/v1/executions/{run}/history")
    assert response.status_code == 200, response.text
    rows = list(reversed(response.json()["data"]))
    assert [(row["operation"], (row["new_values"] or {}).get("status")) for row in rows] == [
        ("INSERT", "requested"),
        ("UPDATE", "running"),
        ("UPDATE", "completed"),
    ]
