"""Action processes watched through a pidfd (attune.worker.spawn; docs/performance.md, "Cheaper
process start and finish on the worker")."""

from __future__ import annotations

import asyncio
import os
import threading

from attune.worker.process import ProcessSpec, run_process
from attune.worker.spawn import pidfd_supported

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
