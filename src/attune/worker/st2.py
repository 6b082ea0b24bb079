"""Running StackStorm actions: the ``core.stackstorm`` runtime (docs/stackstorm.md).

An st2 action's ``entrypoint`` is ``<runner>:<entry point>`` (``python-script:send.py``,
``local-shell-cmd:``). The worker runs Attune's runner shim (``attune/st2compat/runner.py``) with the
pack's interpreter, ``st2common``/``st2reactor`` on ``PYTHONPATH`` (only for these actions), the
parameters and the pack configuration on stdin, and stores the st2-shaped result it prints.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from attune import st2compat
from attune.worker import commands
from attune.worker.process import ProcessOutcome

__all__ = ["RUNNER_SCRIPT", "build_command", "is_st2", "result_of", "stdin_document"]

RUNNER_SCRIPT = st2compat.IMPORT_ROOT / "runner.py"


def is_st2(config: Mapping[str, Any]) -> bool:
    """Whether a runtime's ``execution_config`` is the StackStorm runtime's."""
    return bool(isinstance(config, Mapping) and config.get("st2"))


def build_command(
    config: Mapping[str, Any], pack_dir: Path, env_dir: Path | None, entrypoint: str
) -> commands.Command:
    """``<python> -u runner.py <runner> <pack_dir> <entry>`` with the compatibility layer importable."""
    runner, _, entry = entrypoint.partition(":")
    interpreter = commands.resolve_interpreter(config, pack_dir, env_dir) or "python3"
    path = [str(st2compat.IMPORT_ROOT)]
    inherited = os.environ.get("PYTHONPATH")
    if inherited:
        path.append(inherited)
    argv = [interpreter, "-u", str(RUNNER_SCRIPT), runner.strip(), str(pack_dir), entry.strip()]
    return commands.Command(
        argv=argv,
        env={"PYTHONPATH": os.pathsep.join(path)},
        cwd=pack_dir if pack_dir.is_dir() else None,
        native=False,
    )


def stdin_document(parameters: Mapping[str, Any], pack_config: Any, param_schema: Any) -> str:
    """What the shim reads: the parameters, the pack configuration, parameter positions."""
    positions = {}
    if isinstance(param_schema, Mapping):
        for name, definition in param_schema.items():
            position = definition.get("position") if isinstance(definition, Mapping) else None
            if isinstance(position, int) and not isinstance(position, bool):
                positions[str(name)] = position
    document = {
        "parameters": dict(parameters),
        "config": dict(pack_config) if isinstance(pack_config, Mapping) else {},
        "positions": positions,
    }
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)


def result_of(outcome: ProcessOutcome) -> tuple[str, dict[str, Any]] | None:
    """``(status, result)`` from the shim's last stdout line; None when it printed no result."""
    if outcome.timed_out or outcome.cancelled:
        return None
    lines = outcome.stdout.strip().splitlines()
    if not lines:
        return None
    try:
        result = json.loads(lines[-1])
    except ValueError:
        return None
    if not isinstance(result, dict):
        return None
    return ("completed" if outcome.exit_code == 0 else "failed"), result
