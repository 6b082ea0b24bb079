"""The process runner: the action's command in a new process (docs/performance.md, "Runners")."""

from __future__ import annotations

from attune.worker import output, process, st2
from attune.worker.runners import RunRequest, RunResult


class ProcessRunner:
    """Starts ``request.spec`` (own process group, live logs, redaction, timeout, cancel).

    ``spawn`` starts the process (default: ``exec`` of the command; the warm Python runner forks
    it from a warm interpreter instead); everything else is the same either way.
    """

    def __init__(self, spawn: process.Spawner | None = None) -> None:
        self.spawn = spawn

    async def run(self, request: RunRequest) -> RunResult:
        """Run the process and map its outcome to a status and result."""
        if request.spec is None:
            return RunResult("failed", output.early_failure("Action execution failed: no command to run"))
        outcome = await process.run_process(request.spec, request.cancel, spawn=self.spawn)
        st2_result = st2.result_of(outcome) if request.st2 else None
        log_dir = request.log_dir if request.log_dir is not None else request.spec.log_dir
        status, result = st2_result or output.build_result(
            outcome,
            output_format=request.output_format,
            timeout=request.timeout,
            stderr_log=str(log_dir / process.STDERR_LOG) if log_dir is not None else None,
        )
        return RunResult(status, result)
