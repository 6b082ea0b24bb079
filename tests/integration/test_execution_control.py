"""Cancel, rerun, logs and execution-scoped tokens (Attune extensions)."""

from __future__ import annotations

import httpx
import sqlalchemy as sa

from attune.db import models
from attune.db.repos import executions as execution_repo
from attune.platform import Platform

SCHEMA = {"name": {"type": "string", "default": "world"}, "token": {"type": "string", "secret": True}}


async def _action(platform: Platform) -> models.Action:
    async with platform.db.transaction() as session:
        pack = models.Pack(ref="demo", label="Demo", version="1.0.0")
        session.add(pack)
        await session.flush()
        action = models.Action(
            ref="demo.hello",
            pack=pack.id,
            pack_ref="demo",
            label="Hello",
            description="",
            entrypoint="echo hi",
            param_schema=SCHEMA,
        )
        session.add(action)
    return action


async def _staged(platform: Platform, message_type: str) -> list[dict[str, object]]:
    async with platform.db.session() as session:
        rows = (
            await session.execute(
                sa.select(models.OutboxMessage).where(models.OutboxMessage.message_type == message_type)
            )
        ).scalars()
        return [row.body for row in rows]


async def _set_status(platform: Platform, execution_id: int, status: str, worker: int | None = None) -> None:
    async with platform.db.transaction() as session:
        await session.execute(
            sa.update(models.Execution)
            .where(models.Execution.id == execution_id)
            .values(status=status, worker=worker)
        )


async def test_cancel_before_start_is_immediate(api: httpx.AsyncClient, platform: Platform) -> None:
    await _action(platform)
    platform.relay.pause()  # keep messages in the outbox to inspect
    created = (await api.post("/api/v1/executions/execute", json={"action_ref": "demo.hello"})).json()["data"]
    response = await api.post(f"/api/v1/executions/{created['id']}/cancel")
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["status"] == "cancelled"
    assert data["result"] == {"succeeded": False, "error": "Execution was cancelled"}
    [completed] = await _staged(platform, "ExecutionCompleted")
    assert completed["payload"]["status"] == "cancelled"  # type: ignore[index]
    again = await api.post(f"/api/v1/executions/{created['id']}/cancel")
    assert again.status_code == 409
    assert again.json() == {"error": f"Execution {created['id']} is already cancelled", "code": "CONFLICT"}


async def test_cancel_running_asks_its_worker(api: httpx.AsyncClient, platform: Platform) -> None:
    await _action(platform)
    platform.relay.pause()
    created = (await api.post("/api/v1/executions/execute", json={"action_ref": "demo.hello"})).json()["data"]
    await _set_status(platform, created["id"], "running", worker=7)
    response = await api.post(f"/api/v1/executions/{created['id']}/cancel")
    assert response.json()["data"]["status"] == "canceling"
    async with platform.db.session() as session:
        [row] = (
            await session.execute(
                sa.select(models.OutboxMessage).where(models.OutboxMessage.message_type == "ExecutionCancel")
            )
        ).scalars()
    assert row.routing_key == "execution.cancel.worker.7"
    assert row.body["payload"] == {"execution_id": created["id"], "worker_id": 7}
    missing = await api.post("/api/v1/executions/999999/cancel")
    assert missing.status_code == 404


async def test_rerun_copies_action_and_parameters_including_secrets(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    await _action(platform)
    body = {"action_ref": "demo.hello", "parameters": {"name": "ann", "token": "t0ps3cret"}}
    first = (await api.post("/api/v1/executions/execute", json=body)).json()["data"]
    response = await api.post(f"/api/v1/executions/{first['id']}/rerun")
    assert response.status_code == 201
    second = response.json()["data"]
    assert second["id"] != first["id"]
    assert second["action_ref"] == "demo.hello"
    assert second["config"] == {"name": "ann", "token": "********"}
    assert second["original_execution"] == first["id"]
    third = (await api.post(f"/api/v1/executions/{second['id']}/rerun")).json()["data"]
    assert third["original_execution"] == first["id"], "the chain keeps pointing at its root"
    async with platform.db.session() as session:
        row = await session.get(models.Execution, second["id"])
    assert row is not None and row.secret_params and "t0ps3cret" not in row.secret_params


async def test_logs_read_the_live_files(api: httpx.AsyncClient, platform: Platform) -> None:
    await _action(platform)
    created = (await api.post("/api/v1/executions/execute", json={"action_ref": "demo.hello"})).json()["data"]
    empty = await api.get(f"/api/v1/executions/{created['id']}/logs")
    assert empty.json() == {
        "data": {"stdout": "", "stderr": "", "stdout_truncated": False, "stderr_truncated": False}
    }
    assert platform.settings.artifacts_dir is not None
    log_dir = platform.settings.artifacts_dir / f"execution_{created['id']}"
    log_dir.mkdir(parents=True)
    (log_dir / "stdout.log").write_text("line 1\n\n\n[OUTPUT TRUNCATED: stdout exceeded size limit]\n")
    (log_dir / "stderr.log").write_text("warning\n")
    data = (await api.get(f"/api/v1/executions/{created['id']}/logs")).json()["data"]
    assert data["stdout"].startswith("line 1\n")
    assert data["stdout_truncated"] is True
    assert data == {**data, "stderr": "warning\n", "stderr_truncated": False}
    assert (await api.get("/api/v1/executions/424242/logs")).status_code == 404


async def test_execution_token_works_only_while_the_execution_runs(
    client: httpx.AsyncClient, api: httpx.AsyncClient, platform: Platform
) -> None:
    await _action(platform)
    created = (await api.post("/api/v1/executions/execute", json={"action_ref": "demo.hello"})).json()["data"]
    token, _ = platform.tokens.issue(
        0, f"execution:{created['id']}", "execution", 600, metadata={"execution_id": created["id"]}
    )
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/api/v1/actions", headers=headers)).status_code == 200
    await _set_status(platform, created["id"], "completed")
    after = await client.get("/api/v1/actions", headers=headers)
    assert after.status_code == 401
    assert after.json()["error"]["message"] == "Authentication token expired"


async def test_rerun_merges_new_parameters_and_validates_them(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    await _action(platform)
    body = {"action_ref": "demo.hello", "parameters": {"name": "ann", "token": "t0ps3cret"}}
    first = (await api.post("/api/v1/executions/execute", json=body)).json()["data"]
    response = await api.post(f"/api/v1/executions/{first['id']}/rerun", json={"parameters": {"name": "bob"}})
    assert response.status_code == 201, response.text
    second = response.json()["data"]
    assert second["config"] == {"name": "bob", "token": "********"}
    assert second["original_execution"] == first["id"]
    async with platform.db.session() as session:
        row = await session.get(models.Execution, second["id"])
    assert row is not None
    assert execution_repo.full_parameters(row, platform.secrets) == {"name": "bob", "token": "t0ps3cret"}
    bad = await api.post(f"/api/v1/executions/{first['id']}/rerun", json={"parameters": {"name": 5}})
    assert bad.status_code == 422
    assert bad.json()["code"] == "VALIDATION_ERROR"
