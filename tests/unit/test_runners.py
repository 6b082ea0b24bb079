"""Choosing a runner (docs/performance.md, "Runners")."""

from __future__ import annotations

import asyncio

from attune.worker import runners
from attune.worker.runners.inprocess import InProcessRunner, builtin_for
from attune.worker.runners.process_runner import ProcessRunner


def test_only_the_core_packs_own_noop_and_echo_run_in_process() -> None:
    assert builtin_for("core.noop", "core", "noop.sh") == "core.noop"
    assert builtin_for("core.echo", "core", " echo.sh ") == "core.echo"
    # Another pack's action of that name, or the core action pointed at another script, is a process.
    assert builtin_for("core.noop", "mine", "noop.sh") is None
    assert builtin_for("core.noop", "core", "other.sh") is None
    assert builtin_for("core.sleep", "core", "sleep.sh") is None


def test_the_worker_runs_a_builtin_in_process_unless_turned_off() -> None:
    builtin = runners.RunRequest(1, "core.noop", "text", 10, builtin="core.noop")
    script = runners.RunRequest(2, "pack.act", "text", 10)
    assert isinstance(runners.select(builtin), InProcessRunner)
    assert isinstance(runners.select(builtin, in_process=False), ProcessRunner)
    assert isinstance(runners.select(script), ProcessRunner)


def test_a_cancel_that_came_first_cancels_an_in_process_run() -> None:
    cancel = asyncio.Event()
    cancel.set()
    request = runners.RunRequest(
        1, "core.echo", "text", 10, {"message": "hi"}, builtin="core.echo", cancel=cancel
    )
    ran = asyncio.run(InProcessRunner().run(request))
    assert ran.status == "cancelled"
    assert ran.result["error"] == "Execution was cancelled" and "stdout" not in ran.result
