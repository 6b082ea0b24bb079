"""In-process runs of the core pack's trivial actions (docs/performance.md, "Runners").

``core.noop`` and ``core.echo`` only print their parameters; starting ``/bin/sh`` for them costs
more than everything else an execution does. Here they run as Python functions that produce what
their scripts (``packs/core/actions/noop.sh``, ``echo.sh``) would write to stdout and the exit
code they would end with; the outcome goes through the same :func:`attune.worker.output.build_result`
as a process's, so the stored result has the same shape (``exit_code``, ``duration_ms``,
``succeeded``, ``stdout``; ``error`` on failure).

An action is run in-process only when it is the core pack's own action with its own entry point
(:func:`builtin_for`): a pack that ships another ``noop`` runs its script as usual.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attune.worker import output, process
from attune.worker.params import scalar_text
from attune.worker.redaction import Redactor
from attune.worker.runners import RunRequest, RunResult

log = logging.getLogger(__name__)

CORE_PACK = "core"


@dataclass(frozen=True)
class Printed:
    """What an action's script would have written and how it would have exited."""

    exit_code: int
    stdout: str = ""
    stderr: str = ""


def _noop(parameters: Mapping[str, Any]) -> Printed:
    """``noop.sh``: ``[NOOP] <message>`` when given, the fixed line, then exit ``exit_code``."""
    raw = scalar_text(parameters.get("exit_code", 0)) or "0"
    try:
        exit_code = int(raw, 10)
    except ValueError:
        exit_code = -1
    if not 0 <= exit_code <= 255:
        return Printed(1, "", f"ERROR: exit_code must be an integer between 0 and 255 (got {raw})\n")
    message = scalar_text(parameters.get("message"))
    stdout = (f"[NOOP] {message}\n" if message else "") + "No operation completed successfully\n"
    return Printed(exit_code, stdout)


def _echo(parameters: Mapping[str, Any]) -> Printed:
    """``echo.sh``: the message, without a trailing newline."""
    return Printed(0, scalar_text(parameters.get("message")))


#: Builtin name → (the core action's entry point, its implementation).
BUILTINS: dict[str, tuple[str, Callable[[Mapping[str, Any]], Printed]]] = {
    "core.noop": ("noop.sh", _noop),
    "core.echo": ("echo.sh", _echo),
}


def builtin_for(action_ref: str, pack_ref: str | None, entrypoint: str | None) -> str | None:
    """The builtin that implements this action, if it is the core pack's own one."""
    entry = BUILTINS.get(action_ref)
    if entry is None or pack_ref != CORE_PACK:
        return None
    return action_ref if (entrypoint or "").strip() == entry[0] else None


def run_builtin(
    builtin: str,
    parameters: Mapping[str, Any],
    *,
    output_format: str,
    timeout: float | None,
    log_dir: Path | None,
    cancelled: bool = False,
    redact: Sequence[str] = (),
) -> RunResult:
    """Run ``builtin`` now and build its status and result exactly as for a process
    (secrets in ``redact`` masked in its output, as a process's are)."""
    started = time.monotonic()
    printed = Printed(-1) if cancelled else BUILTINS[builtin][1](parameters)
    if redact:
        redactor = Redactor(redact)
        printed = Printed(
            printed.exit_code,
            redactor(printed.stdout.encode()).decode(),
            redactor(printed.stderr.encode()).decode(),
        )
    outcome = process.ProcessOutcome(
        exit_code=printed.exit_code,
        stdout=printed.stdout,
        stderr=printed.stderr,
        stdout_truncated=False,
        stdout_bytes_truncated=0,
        stderr_truncated=False,
        stderr_bytes_truncated=0,
        duration_ms=int((time.monotonic() - started) * 1000),
        timed_out=False,
        cancelled=cancelled,
        error=None,
    )
    if log_dir is not None:
        write_logs(log_dir, printed.stdout, printed.stderr)
    status, result = output.build_result(
        outcome,
        output_format=output_format,
        timeout=timeout,
        stderr_log=str(log_dir / process.STDERR_LOG) if log_dir is not None else None,
    )
    return RunResult(status, result)


def write_logs(log_dir: Path, stdout: str, stderr: str) -> None:
    """The live log files a process run leaves behind (``GET /executions/{id}/logs`` reads them)."""
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
        (log_dir / process.STDOUT_LOG).write_text(stdout)
        (log_dir / process.STDERR_LOG).write_text(stderr)
    except OSError as exc:
        log.warning("cannot write logs to %s: %s", log_dir, exc)


class InProcessRunner:
    """Runs a builtin action inside the engine: no process, same result."""

    async def run(self, request: RunRequest) -> RunResult:
        """Run ``request.builtin`` (a cancel request that arrived first cancels it)."""
        if request.builtin is None or request.builtin not in BUILTINS:
            return RunResult("failed", output.early_failure(f"No in-process runner for {request.action_ref}"))
        cancelled = request.cancel is not None and request.cancel.is_set()
        return run_builtin(
            request.builtin,
            request.parameters,
            output_format=request.output_format,
            timeout=request.timeout,
            log_dir=request.log_dir,
            cancelled=cancelled,
            redact=request.spec.redact if request.spec is not None else (),
        )
