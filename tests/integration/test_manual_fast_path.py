"""The manual-run fast path (docs/performance.md, "The manual-run fast path"): with an executor in
the API's process and no policy on manual runs of the action, ``POST /executions/execute`` starts a
workflow (or dispatches an action) in its own transaction; with a policy, or when the attempt
fails, the scheduler takes the run as before."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from attune.db import models
from attune.executor import manual
from attune.messaging.messages import MessageType
from attune.messaging.topology import EXECUTIONS_EXCHANGE
from attune.packs.register import register_system_packs
from attune.platform import Platform
from tests.integration.test_executor import (  # noqa: F401 - fixtures
    EXECUTE,
    add,
    add_worker,
    clean_bus,
    concurrency_policy,
    eventually,
    get,
    record,
    record_dispatches,
    running_executor,
    seed_pack,
    settings,
    settle,
)


async def _chain(api: httpx.AsyncClient, platform: Platform) -> models.Action:
    """A workflow of two in-process tasks (``core.noop`` then ``core.echo``)."""
    await register_system_packs(platform)
    response = await api.post("/api/v1/packs", json={"ref": "wf", "label": "Workflows", "version": "1.0.0"})
    assert response.status_code == 201, response.text
    definition = {
        "tasks": [
            {"name": "first", "action": "core.noop", "next": [{"do": ["second"]}]},
            {"name": "second", "action": "core.echo", "input": {"message": "hi"}},
        ]
    }
    body = {
        "ref": "wf.chain",
        "pack_ref": "wf",
        "label": "Chain",
        "version": "1.0.0",
        "definition": definition,
    }
    assert (await api.post("/api/v1/workflows", json=body)).status_code == 201
    async with platform.db.session() as session:
        action = await session.scalar(sa.select(models.Action).where(models.Action.ref == "wf.chain"))
    assert action is not None
    return action


async def _ready(platform: Platform) -> None:
    """Wait until the executor has set up its fast path (it does once it consumes its queues)."""

    async def ready() -> bool:
        return platform.manual_fast_path is not None

    await eventually(ready)


async def _children(platform: Platform, parent: int) -> list[models.Execution]:
    async with platform.db.session() as session:
        query = (
            sa.select(models.Execution).where(models.Execution.parent == parent).order_by(models.Execution.id)
        )
        return list((await session.execute(query)).scalars())


async def test_a_manual_workflow_run_is_done_when_the_request_answers(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    action = await _chain(api, platform)
    requested = await record(platform, (EXECUTIONS_EXCHANGE, "execution.requested"))
    async with running_executor(platform):
        await _ready(platform)
        response = await api.post(EXECUTE, json={"action_ref": action.ref, "parameters": {}})
        assert response.status_code == 201, response.text
        run = response.json()["data"]
        # Its in-process tasks ran in the request's own transaction: no scheduler hop.
        assert run["status"] == "completed"
        await settle(platform)
    assert requested.payloads(MessageType.EXECUTION_REQUESTED) == []
    kids = await _children(platform, run["id"])
    assert [(kid.workflow_task_name, kid.status) for kid in kids] == [
        ("first", "completed"),
        ("second", "completed"),
    ]


async def test_a_failed_attempt_leaves_the_run_to_the_scheduler_with_nothing_of_it_kept(
    api: httpx.AsyncClient, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    action = await _chain(api, platform)
    requested = await record(platform, (EXECUTIONS_EXCHANGE, "execution.requested"))
    real_start = manual.start_workflow
    attempts: list[int] = []

    async def failing(session: Any, execution: Any, workflow: Any, ctx: Any) -> bool:
        attempts.append(execution.id)
        await real_start(session, execution, workflow, ctx)  # rows, messages and all ...
        raise RuntimeError("boom")  # ... then it fails

    monkeypatch.setattr(manual, "start_workflow", failing)
    async with running_executor(platform):
        await _ready(platform)
        response = await api.post(EXECUTE, json={"action_ref": action.ref, "parameters": {}})
        assert response.status_code == 201, response.text
        run = response.json()["data"]
        assert run["status"] == "requested"

        async def done() -> bool:
            return (await get(platform, models.Execution, run["id"])).status == "completed"

        await eventually(done)
        await settle(platform)
    assert attempts == [run["id"]]
    assert [p["execution_id"] for p in requested.payloads(MessageType.EXECUTION_REQUESTED)] == [run["id"]]
    # The scheduler's run is the only one: the attempt's rows and messages went with its savepoint.
    kids = await _children(platform, run["id"])
    assert [(kid.workflow_task_name, kid.status) for kid in kids] == [
        ("first", "completed"),
        ("second", "completed"),
    ]
    async with platform.db.session() as session:
        states = (
            await session.execute(sa.select(sa.func.count()).select_from(models.WorkflowExecution))
        ).scalar_one()
    assert states == 1


async def test_with_a_manual_policy_the_scheduler_decides(api: httpx.AsyncClient, platform: Platform) -> None:
    action = await _chain(api, platform)
    await add(platform, concurrency_policy(action, 5))
    requested = await record(platform, (EXECUTIONS_EXCHANGE, "execution.requested"))
    async with running_executor(platform):
        await _ready(platform)
        response = await api.post(EXECUTE, json={"action_ref": action.ref, "parameters": {}})
        run = response.json()["data"]
        assert run["status"] == "requested"

        async def done() -> bool:
            return (await get(platform, models.Execution, run["id"])).status == "completed"

        await eventually(done)
    assert [p["execution_id"] for p in requested.payloads(MessageType.EXECUTION_REQUESTED)] == [run["id"]]


async def test_a_manual_action_run_is_dispatched_in_the_request(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    _, action, _ = await seed_pack(platform)
    worker = await add_worker(platform, "w-manual-fast", ["shell"])
    dispatches = await record_dispatches(platform, worker.id)
    requested = await record(platform, (EXECUTIONS_EXCHANGE, "execution.requested"))
    async with running_executor(platform):
        await _ready(platform)
        # The first run to a worker goes through the scheduler, which declares the worker's queue.
        first = (await api.post(EXECUTE, json={"action_ref": action.ref, "parameters": {"n": 1}})).json()[
            "data"
        ]
        await settle(platform)
        second = (await api.post(EXECUTE, json={"action_ref": action.ref, "parameters": {"n": 2}})).json()[
            "data"
        ]
        await settle(platform)
        assert (await get(platform, models.Execution, second["id"])).worker == worker.id
    # No scheduler hop for the second: its dispatch was staged with it.
    assert [p["execution_id"] for p in requested.payloads(MessageType.EXECUTION_REQUESTED)] == [first["id"]]
    assert sorted(m.payload["execution_id"] for m in dispatches.messages) == [first["id"], second["id"]]
