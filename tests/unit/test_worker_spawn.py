"""Action processes watched through a pidfd (attune.worker.spawn; docs/performance.md, "Cheaper
process start and finish on the worker")."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from pathlib import Path

from attune.worker.process import ProcessSpec, run_process
from attune.worker.spawn import pidfd_supported, spawn_watched

ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def spec(script: str) -> ProcessSpec:
    return ProcessSpec(
        argv=["/bin/sh", "-c", script],
        cwd=None,
        env=dict(ENV),
        stdin=b"",
        timeout=10,
        max_stdout=1 << 16,
        max_stderr=1 << 16,
        log_dir=None,
    )


async def test_a_running_action_costs_the_worker_no_thread() -> None:
    """asyncio's default child watcher starts a thread per child (``waitpid-N``), which then
    waits for the GIL behind the busy event loop to report the exit; the loop watches a pidfd
    instead."""
    assert pidfd_supported()  # Linux >= 5.3, as CI and production run
    before = {thread.ident for thread in threading.enumerate()}
    run = asyncio.create_task(run_process(spec("sleep 0.3; echo done")))
    await asyncio.sleep(0.15)
    started = [t.name for t in threading.enumerate() if t.ident not in before]
    outcome = await run
    assert started == []
    assert (outcome.exit_code, outcome.stdout) == (0, "done\n")


async def test_the_exit_code_and_a_killing_signal_are_reported() -> None:
    assert (await run_process(spec("exit 3"))).exit_code == 3
    killed = await run_process(spec("kill -9 $$"))
    assert killed.exit_code == -1 and killed.error is None


def pidfds() -> set[str]:
    """This process's open pidfds (their fd numbers)."""
    fds = Path("/proc/self/fd")
    found = set()
    for fd in os.listdir(fds):
        try:
            if os.readlink(fds / fd) == "anon_inode:[pidfd]":
                found.add(fd)
        except OSError:
            continue  # closed meanwhile (the listing's own fd)
    return found


def process_state(pid: int) -> str | None:
    """The state letter in /proc (``Z``: exited, not reaped); None once the process is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):  # ProcessLookupError: reaped while read
        return None
    return next(line.split()[1] for line in status.splitlines() if line.startswith("State:"))


def test_a_child_still_running_when_its_event_loop_closes_is_reaped_once_it_exits() -> None:
    """The loop that watched the child's pidfd is gone: the child must not stay a zombie (nor
    its pidfd open in the worker) until some later process start happens to reap it."""
    before = pidfds()
    loop = asyncio.new_event_loop()

    async def start() -> int:
        child, _ = await spawn_watched(["sleep", "60"], cwd=None, env=ENV)
        child.close()
        return child.pid

    try:
        pid = loop.run_until_complete(start())
    finally:
        loop.close()
    os.killpg(pid, signal.SIGKILL)
    # Whatever reaps it runs by itself; give it ample time (this waits, it does not time).
    deadline = time.monotonic() + 10
    while process_state(pid) is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert process_state(pid) is None
    assert pidfds() == before
