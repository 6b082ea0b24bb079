"""The ``Runner`` port: how one prepared execution is run (docs/performance.md, "Runners").

The worker prepares an execution (action, parameters, environment) and hands a :class:`RunRequest`
to a runner, which returns a :class:`RunResult` — the final status and the ``execution.result``
to store. Which runner runs it is decided in one place, :func:`select`:

* :class:`~attune.worker.runners.process_runner.ProcessRunner` starts the action's command in a
  new process (every pack action);
* :class:`~attune.worker.runners.inprocess.InProcessRunner` runs the core pack's trivial actions
  (``core.noop``, ``core.echo``) inside the engine: no process, the same result shape;
* :class:`~attune.worker.runners.warm_python.WarmPythonRunner` forks a Python action's process
  from a warm interpreter instead of starting one (docs/performance.md, "Warm Python runners").

The execution row is written the same way whichever runner ran it (claim, then finish), so a
crash, a cancel or the liveness monitor treat both alike.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from attune.worker.process import ProcessSpec


@dataclass(frozen=True)
class RunRequest:
    """One prepared execution.

    ``spec`` is the process to start (a process runner needs it); ``builtin`` names the in-process
    implementation of the action when it has one (``core.noop``); ``parameters`` are the action's
    full parameters (secrets included).
    """

    execution_id: int
    action_ref: str
    output_format: str
    timeout: float | None
    parameters: Mapping[str, Any] = field(default_factory=dict)
    spec: ProcessSpec | None = None
    builtin: str | None = None
    st2: bool = False
    log_dir: Path | None = None
    cancel: asyncio.Event | None = None


@dataclass(frozen=True)
class RunResult:
    """The final status (``completed``, ``failed``, ``timeout``, ``cancelled``) and the result."""

    status: str
    result: dict[str, Any]


class Runner(Protocol):
    """Runs one prepared execution to its end; never raises for the action's own failures."""

    async def run(self, request: RunRequest) -> RunResult:
        """Run ``request`` and return its final status and result."""
        ...


def select(request: RunRequest, *, in_process: bool = True, python_pool: Any = None) -> Runner:
    """The runner for ``request``: in-process for a builtin action (unless ``in_process`` is off),
    otherwise a process — forked from a warm interpreter when ``python_pool`` (the
    ``worker.python_pool`` settings) is enabled and the action is a Python script."""
    from attune.worker.runners.inprocess import InProcessRunner
    from attune.worker.runners.process_runner import ProcessRunner
    from attune.worker.runners.warm_python import WarmPythonRunner

    if in_process and request.builtin is not None:
        return InProcessRunner()
    if python_pool is not None and python_pool.enabled:
        return WarmPythonRunner(size=python_pool.size, max_runs=python_pool.max_runs)
    return ProcessRunner()


__all__ = ["RunRequest", "RunResult", "Runner", "select"]
