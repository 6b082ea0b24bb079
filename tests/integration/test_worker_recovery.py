"""A worker's processes never outlive their execution, a restarted worker takes back what it owns,
a late result is kept, and workers learn runtimes registered after they start
(docs/operations.md "Guarantees", "Worker liveness")."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from attune.db import models
from attune.db.repos import workers
from attune.db.types import utcnow
from attune.executor.liveness import LivenessMonitor
from attune.platform import Platform
from attune.testing.clock import FakeClock
from attune.worker import watchdog
from tests.integration.test_executor import running_executor
from tests.integration.test_worker import (
    SHELL_CONFIG,
    add_action,
    add_runtime,
    add_worker_row,
    dispatch,
    request_cancel,
    running_worker,
    shell_runtime,
    wait_for,
    wait_status,
    worker_row,
)


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"


async def wait_dead(pid: int, within: float = 10) -> None:
    await wait_for(lambda: not alive(pid), within=within)


async def read_pid(path: Path) -> int:
    await wait_for(lambda: path.is_file() and path.read_text().strip() != "")
    return int((await asyncio.to_thread(path.read_text)).split()[0])


def spawn_marked(cookie: str) -> subprocess.Popen[bytes]:
    """A detached ``sleep`` carrying ``cookie``, as an action's ``setsid`` child would."""
    env = {**os.environ, watchdog.COOKIE_ENV: cookie}
    return subprocess.Popen(["sleep", "633"], env=env, start_new_session=True)


# --------------------------------------------------------------------------- processes


async def test_a_setsid_child_dies_with_its_execution_at_timeout(platform: Platform, tmp_path: Path) -> None:
    shell = await shell_runtime(platform)
    pid_file = tmp_path / "child"
    action = await add_action(
        platform, "detach", f"setsid sleep 633 & echo $! > {pid_file}; sleep 30", shell, timeout_seconds=1
    )
    async with running_worker(platform) as worker:
        execution_id = await dispatch(platform, action, worker)
        child = await read_pid(pid_file)
        row = await wait_status(platform, execution_id)
        assert row.status == "timeout"
        await wait_dead(child, within=5)


async def test_a_setsid_child_dies_with_its_execution_on_cancel(platform: Platform, tmp_path: Path) -> None:
    shell = await shell_runtime(platform)
    pid_file = tmp_path / "child"
    action = await add_action(platform, "detach", f"setsid sleep 633 & echo $! > {pid_file}; sleep 30", shell)
    async with running_worker(platform) as worker:
        execution_id = await dispatch(platform, action, worker)
        child = await read_pid(pid_file)
        await request_cancel(platform, execution_id, worker.id)
        row = await wait_status(platform, execution_id)
        assert row.status == "cancelled"
        await wait_dead(child, within=5)


def python_watchdog(token: str) -> list[str]:
    """The watchdog without the waiting shell (what runs where there is no /bin/sh)."""
    return [sys.executable, "-I", "-S", watchdog.__file__, token]


@pytest.mark.parametrize("argv", [watchdog.command, python_watchdog], ids=["shell-then-python", "python"])
def test_the_watchdog_kills_a_dead_workers_processes_including_setsid_ones(
    argv: Callable[[str], list[str]],
) -> None:
    token = uuid.uuid4().hex
    marked = spawn_marked(f"{token}:7")
    other = spawn_marked(f"{uuid.uuid4().hex}:7")
    guard = subprocess.Popen(argv(token), stdin=subprocess.PIPE, start_new_session=True)
    try:
        time.sleep(0.3)
        guard.send_signal(signal.SIGINT)  # Ctrl-C reaches the worker's group; the watchdog stays
        time.sleep(0.1)
        assert guard.poll() is None
        assert marked.poll() is None
        assert guard.stdin is not None
        guard.stdin.close()  # what the worker's death does to the pipe
        assert guard.wait(timeout=20) == 0
        assert marked.wait(timeout=10) != 0
        assert other.poll() is None, "the watchdog killed a process of another worker"
    finally:
        for process in (marked, other, guard):
            if process.poll() is None:
                process.kill()
                process.wait()


def test_the_waiting_watchdog_is_a_shell_not_a_python_interpreter() -> None:
    """Idle, a worker's watchdog costs a shell's ≈ 1 MiB, not an interpreter's ≈ 10 MiB
    (docs/performance.md "Idle RSS"); it becomes the Python watchdog once its pipe closes."""
    guard = subprocess.Popen(
        watchdog.command(uuid.uuid4().hex), stdin=subprocess.PIPE, start_new_session=True
    )
    try:
        time.sleep(0.3)
        assert os.path.realpath(f"/proc/{guard.pid}/exe") == os.path.realpath("/bin/sh")
        assert guard.stdin is not None
        guard.stdin.close()
        assert guard.wait(timeout=20) == 0
    finally:
        if guard.poll() is None:
            guard.kill()
            guard.wait()


async def test_a_stopped_worker_leaves_no_background_process_behind(
    platform: Platform, tmp_path: Path
) -> None:
    shell = await shell_runtime(platform)
    pid_file = tmp_path / "child"
    action = await add_action(platform, "daemon", f"setsid sleep 633 & echo $! > {pid_file}", shell)
    async with running_worker(platform) as worker:
        execution_id = await dispatch(platform, action, worker)
        assert (await wait_status(platform, execution_id)).status == "completed"
        child = await read_pid(pid_file)
        assert alive(child)
    await wait_dead(child)


# --------------------------------------------------------------------------- restart


async def _busy(platform: Platform, action: models.Action, worker_id: int, *statuses: str) -> list[int]:
    ids = []
    async with platform.db.transaction() as session:
        for status in statuses:
            row = models.Execution(
                action=action.id,
                action_ref=action.ref,
                config={},
                status=status,
                worker=worker_id,
                max_retries=0,
                started_at=utcnow() if status == "running" else None,
            )
            session.add(row)
            await session.flush()
            ids.append(row.id)
    return ids


async def test_a_restarted_worker_reschedules_what_never_started_and_abandons_what_ran(
    platform: Platform,
) -> None:
    platform.settings.worker.heartbeat_interval = 0.5
    shell = await shell_runtime(platform)
    action = await add_action(platform, "quick", "echo ran", shell)
    async with running_worker(platform, name="phoenix") as first:
        worker_id = first.id
    # What a kill -9 leaves: one dispatch never taken, one execution whose process died.
    waiting, lost = await _busy(platform, action, worker_id, "scheduled", "running")
    async with running_executor(platform), running_worker(platform, name="phoenix") as again:
        assert again.id == worker_id
        rescheduled = await wait_status(platform, waiting)
        abandoned = await wait_status(platform, lost)
    assert (rescheduled.status, rescheduled.worker) == ("completed", worker_id)
    assert rescheduled.result["stdout"] == "ran\n"
    assert abandoned.status == "abandoned"
    assert abandoned.result["error"] == "Worker 'phoenix' restarted"


async def test_a_restarted_worker_kills_what_its_previous_process_left_running(platform: Platform) -> None:
    async with running_worker(platform, name="phoenix-2") as first:
        previous_boot = first.service.boot
    # The watchdog of the first process cleaned up at its stop; this one escaped it (say, both
    # were killed at once).
    leftover = spawn_marked(f"{previous_boot}:42")
    try:
        async with running_worker(platform, name="phoenix-2"):
            assert leftover.wait(timeout=10) != 0
    finally:
        if leftover.poll() is None:
            leftover.kill()
            leftover.wait()


# --------------------------------------------------------------------------- late results


async def test_a_result_arriving_after_the_execution_was_abandoned_is_kept(platform: Platform) -> None:
    shell = await shell_runtime(platform)
    action = await add_action(platform, "slow", "sleep 1.5; echo finished", shell, max_retries=1)
    async with running_worker(platform) as worker:
        execution_id = await dispatch(platform, action, worker, max_retries=1)
        await wait_status(platform, execution_id, {"running"})
        # The liveness monitor gave up on the worker (a heartbeat held up too long) and asked
        # for a retry; the worker is alive and finishes the run anyway.
        async with platform.db.transaction() as session:
            await session.execute(
                sa.update(models.Execution)
                .where(models.Execution.id == execution_id)
                .values(
                    status="abandoned",
                    result={"succeeded": False, "error": "Worker 'x' stopped heartbeating"},
                )
            )
            retry = models.Execution(
                action=action.id,
                action_ref=action.ref,
                config={},
                status="requested",
                original_execution=execution_id,
                retry_count=1,
                max_retries=1,
            )
            session.add(retry)
        row = await wait_status(platform, execution_id, {"completed", "failed"}, within=15)
        assert row.status == "completed"
        assert row.result["stdout"] == "finished\n"
        retried = await wait_status(platform, retry.id, {"cancelled"})
        assert retried.status == "cancelled"


async def test_the_sweep_leaves_alone_a_worker_that_came_back_since_it_looked(
    platform: Platform, monkeypatch: pytest.MonkeyPatch, fake_clock: FakeClock
) -> None:
    """The race of a restart: orphans are listed while the worker is silent, the worker comes
    back and claims its work before the sweep decides. The decision must see the new heartbeat."""
    platform.settings.worker.heartbeat_interval = 0.2
    shell = await shell_runtime(platform)
    action = await add_action(platform, "x", "true", shell)
    worker = await add_worker_row(platform, "back-again", fake_clock.now())
    [running] = await _busy(platform, action, worker.id, "running")
    listed: Sequence[tuple[models.Execution, models.Worker | None]] = []
    real = workers.orphaned_executions

    async def listed_then_back(session: Any, **kwargs: Any) -> Sequence[tuple[models.Execution, Any]]:
        nonlocal listed
        listed = await real(session, **kwargs)
        # The worker restarts right after the scan.
        async with platform.db.transaction() as write:
            await write.execute(
                sa.update(models.Worker)
                .where(models.Worker.id == worker.id)
                .values(last_heartbeat=fake_clock.now())
            )
        return listed

    monkeypatch.setattr(workers, "orphaned_executions", listed_then_back)
    monitor = LivenessMonitor(platform)
    await monitor.sweep()  # starts watching
    fake_clock.advance(0.5)  # the worker is silent for longer than 1.5 intervals
    assert await monitor.sweep() == 0
    assert [execution.id for execution, _ in listed] == [running]
    async with platform.db.session() as session:
        row = await session.get(models.Execution, running)
    assert row is not None and row.status == "running"


async def test_the_sweep_waits_a_full_window_after_the_database_was_unreachable(
    platform: Platform, fake_clock: FakeClock
) -> None:
    """After a database restart no worker could heartbeat: nobody is judged on that gap."""
    platform.settings.worker.heartbeat_interval = 1.0
    shell = await shell_runtime(platform)
    action = await add_action(platform, "x", "true", shell)
    worker = await add_worker_row(platform, "db-gap", fake_clock.now())
    [running] = await _busy(platform, action, worker.id, "running")
    fake_clock.advance(1.6)  # silent past the 1.5 s cut-off, but nobody was watching
    monitor = LivenessMonitor(platform)
    assert await monitor.sweep() == 0
    fake_clock.advance(1.0)
    async with platform.db.transaction() as session:  # its first beat once the database is back
        await session.execute(
            sa.update(models.Worker)
            .where(models.Worker.id == worker.id)
            .values(last_heartbeat=fake_clock.now())
        )
    fake_clock.advance(0.7)
    assert await monitor.sweep() == 0
    async with platform.db.session() as session:
        row = await session.get(models.Execution, running)
    assert row is not None and row.status == "running"
    fake_clock.advance(1.0)  # now silent past the cut-off while the monitor watched
    assert await monitor.sweep() == 1
    async with platform.db.session() as session:
        row = await session.get(models.Execution, running)
    assert row is not None and row.status == "abandoned"


# --------------------------------------------------------------------------- runtimes


async def test_a_worker_learns_runtimes_registered_after_it_started(platform: Platform) -> None:
    async with running_worker(platform, environ={}) as worker:
        assert (await worker_row(platform, worker.id)).capabilities["runtimes"] == []
        await add_runtime(platform, "core.shell", "Shell", SHELL_CONFIG)

        async def learned() -> bool:
            return "shell" in (await worker_row(platform, worker.id)).capabilities["runtimes"]

        deadline = time.monotonic() + 5  # a few heartbeats (0.5 s each)
        while not await learned():
            assert time.monotonic() < deadline, "the worker never learned the Shell runtime"
            await asyncio.sleep(0.1)
