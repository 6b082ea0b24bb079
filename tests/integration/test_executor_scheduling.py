"""The executor's scheduler (docs/operations.md): the least-loaded live worker with the runtime gets an
execution, which waits for one up to executor.no_worker_timeout and fails without. The harness is
test_executor's.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx

from attune.db import models
from attune.db.repos import executions as execution_repo
from attune.executor.scheduler import runtime_name_of
from attune.messaging.messages import MessageType
from attune.platform import Platform
from attune.testing.clock import FakeClock
from tests.integration.test_executor import (
    EXECUTE,
    add,
    add_worker,
    clean_bus,  # noqa: F401 - fixture
    eventually,
    executor_loops,
    get,
    pass_time,
    record_completions,
    record_dispatches,
    running_executor,
    seed_pack,
    settings,  # noqa: F401 - fixture
    settle,
)


async def test_the_least_loaded_live_worker_with_the_runtime_gets_the_execution(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    _, action, _ = await seed_pack(platform, runtime_name="Bash")
    await add_worker(platform, "w-a-python", ["python"])
    busy = await add_worker(platform, "w-b-busy", ["shell"], capacity=4)
    chosen = await add_worker(platform, "w-c-chosen", ["sh", "python"], capacity=4)
    await add_worker(platform, "w-d-stale", ["shell"], heartbeat_age=60)
    await add_worker(platform, "w-e-inactive", ["shell"], status="inactive")
    load = [models.Execution(action_ref="other.x", status="running", worker=busy.id) for _ in range(2)]
    load.append(models.Execution(action_ref="other.x", status="scheduled", worker=chosen.id))
    await add(platform, *load)
    dispatches = await record_dispatches(platform, chosen.id)
    async with running_executor(platform):
        response = await api.post(EXECUTE, json={"action_ref": action.ref, "parameters": {"x": 1}})
        execution_id = response.json()["data"]["id"]
        await settle(platform)
        execution = await get(platform, models.Execution, execution_id)
        assert (execution.status, execution.worker) == ("scheduled", chosen.id)
        assert [m.message_type for m in dispatches.messages] == [MessageType.EXECUTION_REQUESTED]
        assert dispatches.payloads()[0] == {
            "execution_id": execution_id,
            "worker_id": chosen.id,
            "action_ref": action.ref,
            "config": {"x": 1},
        }


def test_a_runtime_without_an_interpreter_binary_is_native() -> None:
    def row(config: dict[str, Any]) -> models.Runtime:
        return models.Runtime(ref="p.r", name="Custom", distributions={}, execution_config=config)

    assert runtime_name_of(row({})) == "native"
    assert runtime_name_of(row({"interpreter": {"binary": ""}})) == "native"
    assert runtime_name_of(row({"interpreter": {"binary": "ruby"}})) == "Custom"


async def test_without_a_live_worker_the_execution_fails_after_the_timeout(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    _, action, _ = await seed_pack(platform, runtime_name="Python")
    await add_worker(platform, "w-shell-only", ["shell"])
    completions = await record_completions(platform)
    async with running_executor(platform):
        execution_id = (await api.post(EXECUTE, json={"action_ref": action.ref})).json()["data"]["id"]
        await settle(platform)
        assert (await get(platform, models.Execution, execution_id)).status == "requested"

        async def failed() -> models.Execution | None:
            row = await get(platform, models.Execution, execution_id)
            return row if row.status == "failed" else None

        execution = await eventually(failed, timeout=5)
        assert execution.result == {"succeeded": False, "error": "No live worker can run runtime 'Python'"}
        await settle(platform)
        assert [(p["execution_id"], p["status"]) for p in completions.payloads()] == [
            (execution_id, "failed")
        ]


@contextlib.asynccontextmanager
async def _waiting_for_a_worker(api: httpx.AsyncClient, platform: Platform) -> AsyncIterator[int]:
    """A running executor holding a manual run that waits (up to 10 s) for a worker to appear."""
    platform.settings.executor.no_worker_timeout = 10
    _, action, _ = await seed_pack(platform)
    async with running_executor(platform):
        execution_id = (await api.post(EXECUTE, json={"action_ref": action.ref})).json()["data"]["id"]
        await settle(platform)
        yield execution_id


async def test_a_worker_that_appears_while_the_execution_waits_gets_it(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    async with _waiting_for_a_worker(api, platform) as execution_id:
        worker = await add_worker(platform, "w-late", ["shell"])

        async def scheduled() -> models.Execution | None:
            row = await get(platform, models.Execution, execution_id)
            return row if row.status == "scheduled" else None

        assert (await eventually(scheduled, timeout=5)).worker == worker.id


async def test_a_cancelled_waiting_execution_is_never_dispatched(
    api: httpx.AsyncClient, platform: Platform, fake_clock: FakeClock
) -> None:
    async with _waiting_for_a_worker(api, platform) as execution_id:
        await fake_clock.sleeping(executor_loops(platform) + 1)  # the scheduler waits for a worker
        assert (await api.post(f"/api/v1/executions/{execution_id}/cancel")).status_code == 200
        worker = await add_worker(platform, "w-after-cancel", ["shell"])
        dispatches = await record_dispatches(platform, worker.id)
        for _ in range(3):  # more than two re-checks (every 0.5 s)
            await pass_time(platform, fake_clock, 0.5)
        await settle(platform)
        execution = await get(platform, models.Execution, execution_id)
        assert (execution.status, execution.worker) == ("cancelled", None)
        assert dispatches.messages == []


async def test_a_workflow_action_fails_with_a_clear_error(platform: Platform) -> None:
    pack, action, _ = await seed_pack(platform, runtime_name=None)
    definition = models.WorkflowDefinition(
        ref="demo.flow", pack=pack.id, pack_ref=pack.ref, label="flow", version="1.0.0", definition={}
    )
    await add(platform, definition)
    async with platform.db.transaction() as session:
        row = await session.get(models.Action, action.id)
        assert row is not None
        row.workflow_def = definition.id
        execution = await execution_repo.request_execution(session, row, {}, box=None, source_service="test")
    async with running_executor(platform):

        async def finished() -> models.Execution | None:
            row = await get(platform, models.Execution, execution.id)
            return row if row.status not in ("requested", "scheduling") else None

        # Waited for, not settled: on RabbitMQ the executor may still be starting its consumers.
        failed = await eventually(finished)
        assert failed.status == "failed"
        assert failed.result["error"].startswith("Workflow 'demo.flow' is invalid")
