"""What a worker reads for a run, and what its completion tells the executor (docs/performance.md).

A worker keeps action definitions between runs but never runs a stale one: the first tests run
the same action several times on one worker, changing its definition (through the API or as a
pack registration would) in between. A completion says whether the run is a workflow task, so
only those make the workflow engine look up the run they belong to.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from attune.db import models
from attune.db.repos import runtimes as runtimes_repo
from attune.db.types import utcnow
from attune.executor.completion import CompletionListener
from attune.messaging.messages import MessageType, make_envelope
from attune.platform import Platform
from attune.worker import run_execution
from tests.integration.test_worker import (
    ALWAYS,
    SHELL_CONFIG,
    RunningWorker,
    add_action,
    add_runtime,
    dispatch,
    running_worker,
    shell_runtime,
    wait_for,
    wait_status,
)


async def run(platform: Platform, action: models.Action, worker: RunningWorker) -> str:
    row = await wait_status(platform, await dispatch(platform, action, worker))
    assert row.status == "completed", row.result
    return str(row.result["stdout"])


async def test_an_action_updated_through_the_api_runs_its_new_definition(
    platform: Platform, api: httpx.AsyncClient
) -> None:
    shell = await shell_runtime(platform)
    action = await add_action(platform, "say", "echo first", shell)
    async with running_worker(platform) as worker:
        assert await run(platform, action, worker) == "first\n"
        assert await run(platform, action, worker) == "first\n"
        response = await api.put(f"/api/v1/actions/{action.ref}", json={"entrypoint": "echo second"})
        assert response.status_code == 200, response.text
        assert await run(platform, action, worker) == "second\n"


def picking(picked: str) -> dict[str, Any]:
    return {**SHELL_CONFIG, "env_vars": {"PICKED": picked}}


def picked_version(runtime: models.Runtime, major: int) -> models.RuntimeVersion:
    """An available version ``<major>.0`` of ``runtime`` whose runs print ``<major>.0``."""
    return models.RuntimeVersion(
        runtime=runtime.id,
        runtime_ref=runtime.ref,
        version=f"{major}.0",
        version_major=major,
        version_minor=0,
        version_patch=0,
        execution_config=picking(f"{major}.0"),
        distributions=ALWAYS,
        available=True,
    )


async def test_runtime_and_version_changes_reach_the_next_run(platform: Platform) -> None:
    runtime = await add_runtime(platform, "x.picky", "Picky", picking("runtime"))
    action = await add_action(platform, "picked", 'echo "$PICKED"', runtime)
    async with running_worker(platform) as worker:
        assert await run(platform, action, worker) == "runtime\n"

        async with platform.db.transaction() as session:
            row = await session.get(models.Runtime, runtime.id)
            assert row is not None
            row.execution_config = picking("runtime-updated")
        assert await run(platform, action, worker) == "runtime-updated\n"

        async with platform.db.transaction() as session:
            version = picked_version(runtime, 1)
            session.add(version)
        assert await run(platform, action, worker) == "1.0\n"

        # A host that verifies the version again and finds it missing (docs/packs.md).
        async with platform.db.transaction() as session:
            await runtimes_repo.set_version_availability(session, version.id, False, now=utcnow())
        assert await run(platform, action, worker) == "runtime-updated\n"

        async with platform.db.transaction() as session:
            await session.execute(
                sa.delete(models.RuntimeVersion).where(models.RuntimeVersion.id == version.id)
            )
            session.add(picked_version(runtime, 2))
        assert await run(platform, action, worker) == "2.0\n"


async def test_completion_messages_say_whether_the_run_is_a_workflow_task(platform: Platform) -> None:
    shell = await shell_runtime(platform)
    action = await add_action(platform, "hello", "echo hello", shell)
    async with running_worker(platform) as worker:
        plain = await dispatch(platform, action, worker)
        task = await dispatch(platform, action, worker, workflow_execution_id=424242)
        for execution_id in (plain, task):
            await wait_status(platform, execution_id)
        await wait_for(lambda: {plain, task} <= {m["execution_id"] for m in worker.completed})

    flags = {m["execution_id"]: m["workflow_child"] for m in worker.completed}
    assert flags == {plain: False, task: True}


@pytest.mark.parametrize(("workflow_child", "advanced"), [(False, False), (True, True), (None, True)])
async def test_only_workflow_tasks_advance_a_workflow_run(
    platform: Platform, workflow_child: bool | None, advanced: bool
) -> None:
    released: list[int] = []
    finished: list[int] = []

    async def release(execution_id: int) -> None:
        released.append(execution_id)

    async def on_finished(execution_id: int) -> None:
        finished.append(execution_id)

    listener = CompletionListener(platform, release_slot=release, on_finished=on_finished)
    payload: dict[str, Any] = {
        "execution_id": 7,
        "action_id": 2,
        "action_ref": "core.noop",
        "status": "completed",
        "completed_at": utcnow().isoformat(),
    }
    if workflow_child is not None:  # None: a message from a publisher that does not say
        payload["workflow_child"] = workflow_child
    await listener.handle(make_envelope(MessageType.EXECUTION_COMPLETED, payload, source_service="worker"))
    await listener.close()

    assert released == [7]
    assert finished == ([7] if advanced else [])


async def test_preparing_a_run_of_a_known_action_reads_two_statements(platform: Platform) -> None:
    """Guard of docs/performance.md: the stamp, then the keys (in one read transaction)."""
    shell = await shell_runtime(platform)
    action = await add_action(platform, "cheap", "echo cheap", shell)
    async with platform.db.transaction() as session:
        execution = models.Execution(action=action.id, action_ref=action.ref, config={}, status="running")
        session.add(execution)
    await run_execution.prepare(platform, execution)  # reads the definition once

    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        # The outbox relay scans concurrently; SQLite's BEGIN is a statement of its own here.
        if "outbox" not in statement and not statement.startswith("BEGIN"):
            statements.append(" ".join(statement.split()))

    engine = platform.db.engine.sync_engine
    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        plan = await run_execution.prepare(platform, execution)
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)

    assert plan.spec.argv[-1] == "echo cheap"
    assert len(statements) == 2, statements
    assert "FROM action" in statements[0]
    assert 'FROM "key"' in statements[1] or "FROM key" in statements[1]
