"""A Python action through a real server runs warm and ends like a cold run (docs/performance.md,
"Warm Python runners").

The same action runs on a server with the warm pool on (the default) and on one with it off; a
user sees the same status, result and logs, and after the first runs the action's process is
forked from the warm interpreter rather than started by the worker.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from attune.testing.deployment import Deployment
from tests.acceptance.harness import running_deployment

TERMINAL = {"completed", "failed", "timeout", "cancelled", "abandoned"}
SCRIPT = """\
import os, sys
print("parent", os.getppid())
print("args", sys.argv[1:], __name__)
print("to stderr", file=sys.stderr)
"""


def _deployment(root: Any, pool: str) -> Iterator[Deployment]:
    with running_deployment(root, extra_env={"ATTUNE__WORKER__PYTHON_POOL__ENABLED": pool}) as d:
        d.post("/api/v1/packs", {"ref": "pp", "label": "Pool", "version": "1.0.0"})
        actions = d.workdir / "packs" / "pp" / "actions"
        actions.mkdir(parents=True, exist_ok=True)
        (actions / "show.py").write_text(SCRIPT)
        d.post(
            "/api/v1/actions",
            {
                "ref": "pp.show",
                "pack_ref": "pp",
                "label": "show",
                "runtime_ref": "core.python",
                "entrypoint": "show.py",
            },
        )
        # The first runs may come before the pack's environment is built: wait for a good one.
        for _ in range(10):
            if _run(d)[0]["status"] == "completed":
                break
        yield d


@pytest.fixture(scope="module")
def warm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    yield from _deployment(tmp_path_factory.mktemp("pool-on"), "true")


@pytest.fixture(scope="module")
def cold(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    yield from _deployment(tmp_path_factory.mktemp("pool-off"), "false")


def _run(d: Deployment) -> tuple[dict[str, Any], int]:
    started = d.post("/api/v1/executions/execute", {"action_ref": "pp.show", "parameters": {}})
    execution = d.wait_execution(int(started["id"]), TERMINAL, timeout=60)
    logs = d.get(f"/api/v1/executions/{execution['id']}/logs")
    result = {k: v for k, v in (execution["result"] or {}).items() if k not in ("duration_ms", "stderr_log")}
    stdout = str(result.get("stdout", ""))
    parent = int(stdout.split()[1]) if stdout.startswith("parent") else -1
    result["stdout"] = "\n".join(stdout.splitlines()[1:])
    seen = {"status": execution["status"], "result": result, "stderr": logs["stderr"]}
    return seen, parent


def test_a_python_action_on_a_real_server_runs_warm_and_ends_like_a_cold_run(
    warm: Deployment, cold: Deployment
) -> None:
    server = {d.workdir: {p.pid for p in d.processes.values()} for d in (warm, cold)}
    cold_runs = [_run(cold) for _ in range(3)]
    warm_runs = [_run(warm) for _ in range(10)]
    for seen, _ in cold_runs + warm_runs:
        assert seen == cold_runs[0][0]
    assert cold_runs[0][0]["status"] == "completed" and cold_runs[0][0]["stderr"] == "to stderr\n"
    # Pool off: every run is the server's own child. Pool on: later runs are forked elsewhere.
    assert all(parent in server[cold.workdir] for _, parent in cold_runs)
    assert warm_runs[-1][1] not in server[warm.workdir] and warm_runs[-1][1] > 0
