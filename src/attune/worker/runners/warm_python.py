"""The warm Python runner: a Python action forked from a warm interpreter (docs/performance.md,
"Warm Python runners"; :mod:`attune.worker.runners.python_pool`).

It is the process runner with another way to start the process: when the command is ``python
[flags] script.py …`` and a warm interpreter for it is ready, the action's process is forked from
that interpreter; otherwise (another program, an action that opts out, no interpreter ready yet,
or the interpreter just died) it is started cold. Supervision and the result are the same code.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from attune.worker import process
from attune.worker.runners import RunRequest, RunResult
from attune.worker.runners.process_runner import ProcessRunner
from attune.worker.runners.python_pool import WarmCall, Zygote, ZygoteGone, pool_for, warm_call

log = logging.getLogger(__name__)


class WarmPythonRunner:
    """Runs Python actions through the event loop's pool (``size`` interpreters per key, each
    replaced after ``max_runs`` runs); every other command as the process runner does."""

    #: Seconds a run waits for a warm interpreter instead of starting cold at once (tests set it).
    wait_ready: float = 0.0

    def __init__(self, *, size: int = 1, max_runs: int = 100) -> None:
        self.size = size
        self.max_runs = max_runs

    async def run(self, request: RunRequest) -> RunResult:
        """Run ``request``, forked from a warm interpreter when one is ready."""
        spec = request.spec
        call = warm_call(spec.argv, spec.env, spec.cookie) if spec is not None else None
        if call is None:
            return await ProcessRunner().run(request)
        pool = pool_for(asyncio.get_running_loop(), size=self.size, max_runs=self.max_runs)
        zygote = pool.pick(call)
        if zygote is None and self.wait_ready > 0:
            zygote = await pool.ready(call, self.wait_ready)
        if zygote is None:
            return await ProcessRunner().run(request)
        return await ProcessRunner(_spawner(zygote, call)).run(request)


def _spawner(zygote: Zygote, call: WarmCall) -> process.Spawner:
    async def spawn(
        argv: Sequence[str], cwd: Path | None, env: Mapping[str, str], stdin: bytes
    ) -> process.Spawned:
        try:
            return await zygote.spawn(argv, cwd, env, stdin)
        except ZygoteGone as exc:
            # The interpreter died between runs: this run starts cold, the pool starts another.
            log.info(
                "warm interpreter %s unavailable (%s); starting %s cold", call.launch[0], exc, call.script
            )
            return await process.spawn_process(argv, cwd, env, stdin)

    return spawn
