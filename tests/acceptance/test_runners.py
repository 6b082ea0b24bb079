"""In-process and process runners end alike (docs/performance.md, "Runners").

``core.noop`` and ``core.echo`` run inside the worker (no ``/bin/sh``). Beside each runs the very
same script started as a process (an ad-hoc action whose command is the core pack's script), and
everything a user can see must match: status, result (apart from the duration), logs, history,
the worker that ran it. A crash in the middle of a run is recovered the same way for both.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from attune.testing.deployment import Deployment
from tests.acceptance.harness import running_deployment

TERMINAL = {"completed", "failed", "timeout", "cancelled", "abandoned"}


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with running_deployment(tmp_path_factory.mktemp("runners")) as deployment:
        deployment.post("/api/v1/packs", {"ref": "rt", "label": "Runners", "version": "1.0.0"})
        yield deployment


def _script_twin(d: Deployment, core_action: str) -> str:
    """An action that starts the core action's own script as a process, with the same parameters."""
    core = d.get(f"/api/v1/actions/{core_action}")
    script = d.workdir / "packs" / "core" / "actions" / core["entrypoint"]
    ref = f"rt.{core_action.split('.')[1]}_{uuid.uuid4().hex[:6]}"
    d.post(
        "/api/v1/actions",
        {
            "ref": ref,
            "pack_ref": "rt",
            "label": ref,
            "runtime_ref": "core.shell",
            "entrypoint": f"/bin/sh {script}",
            "param_schema": core["param_schema"],
            "parameter_delivery": core["parameter_delivery"],
            "parameter_format": core["parameter_format"],
            "output_format": core["output_format"],
        },
    )
    return ref


def _run(d: Deployment, ref: str, parameters: dict[str, Any]) -> int:
    return int(d.post("/api/v1/executions/execute", {"action_ref": ref, "parameters": parameters})["id"])


def _seen(d: Deployment, execution_id: int, *, statuses: set[str] = TERMINAL) -> dict[str, Any]:
    """What a user sees of a finished execution, minus what differs by nature (ids, times, refs)."""
    execution = d.wait_execution(execution_id, statuses, timeout=60)
    result = dict(execution["result"] or {})
    assert isinstance(result.pop("duration_ms", 0), int)
    result.pop("stderr_log", None)
    logs = d.get(f"/api/v1/executions/{execution_id}/logs")
    history = d.get(f"/api/v1/executions/{execution_id}/history")
    return {
        "status": execution["status"],
        "result": result,
        "ran_on_a_worker": execution["worker"] is not None,
        "started": execution.get("started_at") is not None,
        "logs": {"stdout": logs["stdout"], "stderr": logs["stderr"]},
        "transitions": [
            (h.get("old_values") or {}).get("status", "∅")
            + "→"
            + str((h.get("new_values") or {}).get("status"))
            for h in history
            if "status" in (h.get("changed_fields") or []) or h.get("operation") == "INSERT"
        ],
    }


CASES = [
    ("core.noop", {}),
    ("core.noop", {"message": 'it\'s "quoted"\nand two lines'}),
    ("core.noop", {"exit_code": 3, "message": "boom"}),
    ("core.echo", {"message": "hello  world "}),
    ("core.echo", {}),
]


@pytest.mark.parametrize(("core_action", "parameters"), CASES)
def test_in_process_run_ends_exactly_like_the_script(
    deployment: Deployment, core_action: str, parameters: dict[str, Any]
) -> None:
    twin = _script_twin(deployment, core_action)
    in_process = _seen(deployment, _run(deployment, core_action, parameters))
    as_process = _seen(deployment, _run(deployment, twin, parameters))
    assert in_process == as_process
    assert in_process["ran_on_a_worker"] and in_process["started"]


def _async_url(url: str) -> str:
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
    return "postgresql+asyncpg://" + url.split("://", 1)[1]


async def _back_to_running(url: str, ids: list[int]) -> None:
    """The rows as a crash in the middle of the runs leaves them: ``running``, no result."""
    engine = create_async_engine(_async_url(url))
    try:
        async with engine.begin() as conn:
            await conn.execute(
                sa.text("UPDATE execution SET status = 'running', result = NULL WHERE id IN (:a, :b)"),
                {"a": ids[0], "b": ids[1]},
            )
    finally:
        await engine.dispose()


def test_a_crash_mid_run_is_recovered_alike(tmp_path_factory: pytest.TempPathFactory) -> None:
    with running_deployment(tmp_path_factory.mktemp("runners-crash")) as d:
        d.post("/api/v1/packs", {"ref": "rt", "label": "Runners", "version": "1.0.0"})
        twin = _script_twin(d, "core.noop")
        ids = [_run(d, "core.noop", {"message": "x"}), _run(d, twin, {"message": "x"})]
        for execution_id in ids:
            d.wait_execution(execution_id, {"completed"}, timeout=60)
        for proc in d.processes.values():
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        asyncio.run(_back_to_running(d.database_url, ids))
        d.processes.clear()
        d.start()
        deadline = time.monotonic() + 60
        seen: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            seen = [d.get(f"/api/v1/executions/{i}") for i in ids]
            if all(s["status"] != "running" for s in seen):
                break
            time.sleep(0.2)
        assert all(s["status"] != "running" for s in seen), seen
        shapes = [(s["status"], sorted((s["result"] or {}).keys()), s["worker"] is not None) for s in seen]
        assert shapes[0] == shapes[1], seen


def _workflow(d: Deployment, tasks: list[dict[str, Any]]) -> str:
    ref = f"rt.flow_{uuid.uuid4().hex[:6]}"
    d.post(
        "/api/v1/workflows",
        {"ref": ref, "pack_ref": "rt", "label": ref, "version": "1.0.0", "definition": {"tasks": tasks}},
    )
    return ref


def _children(d: Deployment, parent: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = d.get("/api/v1/executions", params={"parent": parent, "per_page": 100})
    return [d.get(f"/api/v1/executions/{row['id']}") for row in sorted(rows, key=lambda r: r["id"])]


def test_workflow_tasks_run_in_the_engine_end_like_their_scripts(deployment: Deployment) -> None:
    """Tasks of core.noop/core.echo run inside the workflow's own step; each still has its
    execution row, result, history and the same outcome as the same script run as a process."""
    echo, noop = _script_twin(deployment, "core.echo"), _script_twin(deployment, "core.noop")
    tasks: list[dict[str, Any]] = []
    for name, action in (("a", "core.echo"), ("b", echo), ("c", "core.noop"), ("d", noop)):
        message = 'say "it\'s"' if "echo" in action else "n"
        tasks.append(
            {
                "name": name,
                "action": action,
                "input": {"message": message} if "echo" in action else {"message": message, "exit_code": 0},
                "next": [{"do": [chr(ord(name) + 1)]}] if name != "d" else [],
            }
        )
    tasks.append(
        {
            "name": "items",
            "action": "core.echo",
            "with_items": "{{ ['x', 'y', 'z'] }}",
            "input": {"message": "{{ item }}"},
        }
    )
    tasks[3]["next"] = [{"do": ["items"]}]
    parent = _run(deployment, _workflow(deployment, tasks), {})
    execution = deployment.wait_execution(parent, TERMINAL, timeout=60)
    children = _children(deployment, parent)
    assert execution["status"] == "completed", (execution["result"], children)
    by_task = {
        c["workflow_task"]["task_name"]: c for c in children if c["workflow_task"]["task_index"] is None
    }
    assert set(by_task) == {"a", "b", "c", "d"}

    def outcome(child: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any]]:
        result = {k: v for k, v in child["result"].items() if k not in ("duration_ms", "stderr_log")}
        return child["status"], result, child["config"]

    assert outcome(by_task["a"]) == outcome(by_task["b"])
    assert outcome(by_task["c"]) == outcome(by_task["d"])
    assert by_task["a"]["result"]["stdout"] == 'say "it\'s"'
    items = sorted(
        (c for c in children if c["workflow_task"]["task_index"] is not None), key=lambda c: c["id"]
    )
    assert [(c["status"], c["result"]["stdout"]) for c in items] == [
        ("completed", "x"),
        ("completed", "y"),
        ("completed", "z"),
    ]
    for child in (by_task["a"], by_task["c"], *items):
        assert child["started_at"] is not None and child["parent"] == parent
        history = deployment.get(f"/api/v1/executions/{child['id']}/history")
        statuses = [(h.get("new_values") or {}).get("status") for h in reversed(history)]
        assert statuses[0] == "requested" and statuses[-1] == "completed", history
