"""Python actions forked from a warm interpreter end like cold ones (docs/performance.md,
"Warm Python runners").

A real worker runs each Python action twice — with ``worker.python_pool`` off (a new
interpreter) and on (forked from a warm one) — and what a user sees must be the same: status,
result, logs, secrets masked, the ``ATTUNE_*`` environment. A leftover child of a warm action
dies on timeout and cancel, and a warm interpreter that crashes mid-action fails that execution
like a crashed process, after which the pool starts a new one.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from attune.db import models
from attune.db.repos import executions as execution_repo
from attune.domain.enums import ExecutionStatus
from attune.platform import Platform
from attune.settings import PythonPoolSettings
from attune.worker.process import group_alive
from attune.worker.runners.python_pool import close_pools
from attune.worker.runners.warm_python import WarmPythonRunner
from tests.integration.test_worker import (
    add_action,
    add_runtime,
    dispatch,
    log_dir,
    pack_file,
    request_cancel,
    running_worker,
    stage_dispatch,
    wait_for,
    wait_status,
)

PYTHON_CONFIG = {"interpreter": {"binary": sys.executable, "args": ["-u"], "file_extension": ".py"}}
ENVIRON = {"ATTUNE_WORKER_RUNTIMES": "shell,native,python"}
WARM = PythonPoolSettings(enabled=True)
COLD = PythonPoolSettings(enabled=False)


@pytest.fixture(autouse=True)
def waits_for_the_interpreter(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every warm run here is forked (the first one would otherwise start cold)."""
    monkeypatch.setattr(WarmPythonRunner, "wait_ready", 15.0)
    yield
    close_pools()


async def python_action(platform: Platform, name: str, text: str, **values: Any) -> models.Action:
    py = await add_runtime(platform, f"x.python_{uuid.uuid4().hex[:6]}", "Python", PYTHON_CONFIG)
    pack_file(platform, f"{name}.py", text)
    return await add_action(platform, name, f"{name}.py", py, is_adhoc=False, **values)


async def run_secret(platform: Platform, action: models.Action, parameters: dict[str, Any], pool: Any) -> Any:
    async with running_worker(platform, ENVIRON, python_pool=pool) as worker:
        async with platform.db.transaction() as session:
            execution = await execution_repo.request_execution(
                session, action, parameters, box=platform.secrets, source_service="test"
            )
            execution.status = ExecutionStatus.SCHEDULED.value
            execution.worker = worker.id
            await session.flush()
            stage_dispatch(session, execution, worker.id)
        return await wait_status(platform, execution.id)


def seen(platform: Platform, row: models.Execution) -> dict[str, Any]:
    result = {k: v for k, v in (row.result or {}).items() if k not in ("duration_ms", "stderr_log")}
    logs = log_dir(platform, row.id)
    return {
        "status": row.status,
        "result": result,
        "stdout.log": (logs / "stdout.log").read_text(),
        "stderr.log": (logs / "stderr.log").read_text(),
    }


ACTION = """\
import json, os, sys
params = json.loads(sys.stdin.readline())
print(json.dumps({
    "greeting": "hello " + params["name"],
    "token_seen": params["token"],
    "attune": sorted(k for k in os.environ if k.startswith("ATTUNE_") and k != "ATTUNE_PROCESS_COOKIE"),
    "action": os.environ["ATTUNE_ACTION"],
    "own_group": os.getpgid(0) == os.getpid(),
    "main": __name__,
}))
print("stderr sees " + params["token"], file=sys.stderr)
if params["name"] == "fail":
    raise RuntimeError("asked to fail")
"""


@pytest.mark.parametrize("name", ["world", "fail"])
async def test_a_warm_python_action_ends_like_a_cold_one(platform: Platform, name: str) -> None:
    assert platform.secrets is not None
    action = await python_action(
        platform,
        "greet",
        ACTION,
        output_format="json",
        param_schema={"name": {"type": "string"}, "token": {"type": "string", "secret": True}},
    )
    secret = f"S3cret-{uuid.uuid4().hex}"
    parameters = {"name": name, "token": secret}
    cold = await run_secret(platform, action, parameters, COLD)
    warm = await run_secret(platform, action, parameters, WARM)
    assert seen(platform, warm) == seen(platform, cold)
    assert secret not in str(seen(platform, warm))
    assert warm.status == ("completed" if name == "world" else "failed"), warm.result
    if name == "world":
        assert warm.result["data"]["token_seen"] == "********"
        assert warm.result["data"]["own_group"] is True and warm.result["data"]["main"] == "__main__"
        assert "ATTUNE_API_TOKEN" in warm.result["data"]["attune"]
    else:
        assert "RuntimeError: asked to fail" in seen(platform, warm)["stderr.log"]


async def test_a_warm_action_is_forked_from_the_interpreter(platform: Platform) -> None:
    action = await python_action(platform, "parent", "import os\nprint(os.getppid())\n")
    async with running_worker(platform, ENVIRON, python_pool=WARM) as worker:
        first = await wait_status(platform, await dispatch(platform, action, worker))
        second = await wait_status(platform, await dispatch(platform, action, worker))
    parents = [int(row.result["stdout"]) for row in (first, second)]
    assert parents[0] == parents[1] != os.getpid()


LEFTOVER = """\
import os, subprocess, time
child = subprocess.Popen(["setsid", "sleep", "300"])
print(os.getpid(), child.pid, flush=True)
time.sleep(300)
"""


async def first_line(platform: Platform, execution_id: int) -> list[int]:
    stdout = log_dir(platform, execution_id) / "stdout.log"
    await wait_for(lambda: stdout.is_file() and stdout.read_text().strip() != "")
    return [int(word) for word in stdout.read_text().split()]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


async def test_timeout_kills_a_warm_action_and_its_leftover_child(platform: Platform) -> None:
    action = await python_action(platform, "slow", LEFTOVER, timeout_seconds=1)
    async with running_worker(platform, ENVIRON, python_pool=WARM) as worker:
        execution_id = await dispatch(platform, action, worker)
        pid, leftover = await first_line(platform, execution_id)
        row = await wait_status(platform, execution_id, within=10)
        await wait_for(lambda: not alive(leftover) and not group_alive(pid), within=5)
    assert row.status == "timeout"
    assert row.result["error"] == "Execution timed out after 1 seconds"


async def test_cancel_kills_a_warm_action_and_its_leftover_child(platform: Platform) -> None:
    action = await python_action(platform, "long", LEFTOVER)
    async with running_worker(platform, ENVIRON, python_pool=WARM) as worker:
        execution_id = await dispatch(platform, action, worker)
        pid, leftover = await first_line(platform, execution_id)
        await request_cancel(platform, execution_id, worker.id)
        row = await wait_status(platform, execution_id, within=10)
        await wait_for(lambda: not alive(leftover) and not group_alive(pid), within=5)
    assert row.status == "cancelled"


CRASHABLE = """\
import os, time
print(os.getpid(), os.getppid(), flush=True)
time.sleep(300)
"""


async def test_a_crashed_warm_interpreter_fails_the_run_like_a_crashed_process(platform: Platform) -> None:
    action = await python_action(platform, "crash", CRASHABLE)
    shapes = {}
    for mode, pool in (("cold", COLD), ("warm", WARM)):
        async with running_worker(platform, ENVIRON, python_pool=pool) as worker:
            execution_id = await dispatch(platform, action, worker)
            pid, parent = await first_line(platform, execution_id)
            # Cold: the action's own process dies. Warm: the interpreter it was forked from.
            os.kill(pid if mode == "cold" else parent, signal.SIGKILL)
            row = await wait_status(platform, execution_id, within=10)
            await wait_for(lambda killed=pid: not alive(killed), within=5)
            shapes[mode] = (row.status, row.result["exit_code"], sorted(row.result))
            if mode == "warm":
                assert parent != os.getpid()
                # The pool starts a new interpreter: the next run is forked from it.
                recovered = await python_action(platform, "after", "import os\nprint(os.getppid())\n")
                after = await wait_status(platform, await dispatch(platform, recovered, worker))
                assert after.status == "completed", after.result
                assert int(after.result["stdout"]) not in (parent, os.getpid())
    assert shapes["warm"] == shapes["cold"]
    assert shapes["warm"][:2] == ("failed", -1)


async def test_the_pool_off_runs_python_actions_cold(platform: Platform) -> None:
    action = await python_action(platform, "coldparent", "import os\nprint(os.getppid())\n")
    async with running_worker(platform, ENVIRON, python_pool=COLD) as worker:
        row = await wait_status(platform, await dispatch(platform, action, worker))
    assert int(row.result["stdout"]) == os.getpid()
    await asyncio.sleep(0)
