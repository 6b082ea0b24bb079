"""A running action's timeout and cancel, and dispatches the worker must not run (docs/packs.md): the
process group is killed on timeout or cancel request, a redelivered dispatch does not run twice and one
for an execution not scheduled on this worker is skipped. The worker harness is test_worker's.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from attune.domain.enums import ExecutionStatus
from attune.platform import Platform
from attune.worker import environments
from attune.worker.process import group_alive
from tests.integration.test_worker import (
    PACK,
    SHELL_CONFIG,
    add_action,
    add_runtime,
    dispatch,
    execution_row,
    pack_file,
    redispatch,
    request_cancel,
    running_worker,
    shell_runtime,
    wait_for,
    wait_for_pgid,
    wait_status,
)


async def test_timeout_kills_the_process_group(platform: Platform) -> None:
    shell = await shell_runtime(platform)
    action = await add_action(platform, "slow", "echo $$; sleep 30 & sleep 30", shell, timeout_seconds=1)
    async with running_worker(platform) as worker:
        loop = asyncio.get_running_loop()
        started = loop.time()
        execution_id = await dispatch(platform, action, worker)
        pgid = await wait_for_pgid(platform, execution_id)
        row = await wait_status(platform, execution_id, within=15)
        elapsed = loop.time() - started

    assert row.status == "timeout"
    # Killed at the timeout, not when the 30 s sleeps end (a loaded machine may add seconds).
    assert elapsed < 15
    assert row.result["error"] == "Execution timed out after 1 seconds"
    assert not group_alive(pgid)


async def test_cancel_request_kills_the_process_group(platform: Platform) -> None:
    shell = await shell_runtime(platform)
    action = await add_action(platform, "long", "echo $$; sleep 30 & sleep 30", shell)
    async with running_worker(platform) as worker:
        execution_id = await dispatch(platform, action, worker)
        pgid = await wait_for_pgid(platform, execution_id)
        await request_cancel(platform, execution_id, worker.id)
        row = await wait_status(platform, execution_id, within=5)
        await wait_for(lambda: any(m["execution_id"] == execution_id for m in worker.completed))

    assert row.status == "cancelled"
    assert not group_alive(pgid)
    message = next(m for m in worker.completed if m["execution_id"] == execution_id)
    assert message["status"] == "cancelled"


async def test_cancel_request_does_not_wait_for_the_environment(platform: Platform) -> None:
    """Issue #11 (a workflow took ≈70 s to reach ``cancelled``): a run whose pack environment is
    still being built (its lock held, as by the worker's start-up build or another worker) ends
    ``cancelled`` at once on a cancel request, not once the build is done."""
    config = {
        **SHELL_CONFIG,
        "environment": {"env_type": "dir", "create_command": ["mkdir", "-p", "{env_dir}"]},
    }
    runtime_row = await add_runtime(platform, "core.shell", "Shell", config)
    action = await add_action(platform, "envwait", "envwait.sh", runtime_row)
    pack_file(platform, "envwait.sh", "echo ran\n", 0o755)
    env_dir = environments.env_dir_for(platform.settings.envs_dir, PACK, "shell", None)
    async with environments.environment_lock(env_dir, 5), running_worker(platform) as worker:
        execution_id = await dispatch(platform, action, worker)
        await wait_status(platform, execution_id, {"running"})
        await asyncio.sleep(0.3)  # claimed: preparing, waiting for the environment
        await request_cancel(platform, execution_id, worker.id)
        row = await wait_status(platform, execution_id, within=5)
        await wait_for(lambda: any(m["execution_id"] == execution_id for m in worker.completed))

    assert row.status == "cancelled"
    assert row.result == {"succeeded": False, "error": "Execution was cancelled"}


async def test_redelivered_dispatch_does_not_run_twice(platform: Platform, tmp_path: Path) -> None:
    shell = await shell_runtime(platform)
    counter = tmp_path / "runs.txt"
    action = await add_action(platform, "count", f"echo run >> {counter}; sleep 0.3", shell)
    async with running_worker(platform) as worker:
        execution_id = await dispatch(platform, action, worker)
        await redispatch(platform, execution_id, worker)  # while it runs
        await wait_status(platform, execution_id)
        await redispatch(platform, execution_id, worker)  # after it finished
        await platform.relay.flush()
        await asyncio.sleep(0.5)
        row = await execution_row(platform, execution_id)

    assert row.status == "completed"
    assert counter.read_text() == "run\n"
    assert [m["execution_id"] for m in worker.completed].count(execution_id) == 1


async def test_dispatch_for_an_execution_not_scheduled_here_is_skipped(
    platform: Platform, tmp_path: Path
) -> None:
    shell = await shell_runtime(platform)
    marker = tmp_path / "ran"
    action = await add_action(platform, "touch", f"touch {marker}", shell)
    async with running_worker(platform) as worker:
        execution_id = await dispatch(platform, action, worker, status=ExecutionStatus.CANCELLED.value)
        await platform.relay.flush()
        await asyncio.sleep(0.5)
        row = await execution_row(platform, execution_id)

    assert row.status == "cancelled"
    assert not marker.exists()
