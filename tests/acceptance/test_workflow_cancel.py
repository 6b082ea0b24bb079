"""Cancelling a running workflow ends it ``cancelled`` within a second of its running children's own
cancellation (docs/workflows.md), whatever the shape: with-items, a nested workflow, an action
that ignores SIGTERM. Embedded in the SQLite pass, scaled in the PostgreSQL pass."""

from __future__ import annotations

import textwrap
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from attune.testing.deployment import Deployment
from tests.acceptance.harness import running_deployment

pytestmark = pytest.mark.slow

TERMINAL = {"completed", "failed", "cancelled", "timeout", "abandoned"}

FILES = {
    "workflows/items.yaml": """\
        ref: wfcancel.items
        label: items
        version: "1.0.0"
        tasks:
          - name: each
            action: core.sleep
            with_items: "{{ [1, 2, 3, 4, 5, 6] }}"
            concurrency: 2
            input: {seconds: 60}
        """,
    "workflows/inner.yaml": """\
        ref: wfcancel.inner
        label: inner
        version: "1.0.0"
        tasks:
          - name: nap
            action: core.sleep
            input: {seconds: 60}
        """,
    "workflows/outer.yaml": """\
        ref: wfcancel.outer
        label: outer
        version: "1.0.0"
        tasks:
          - name: sub
            action: wfcancel.inner
          - name: nap
            action: core.sleep
            input: {seconds: 60}
        """,
    "actions/stubborn.yaml": """\
        ref: wfcancel.stubborn
        label: ignores SIGTERM
        runner_type: shell
        entry_point: stubborn.sh
        """,
    "actions/stubborn.sh": "#!/bin/sh\ntrap '' TERM\nsleep 60\n",
    "workflows/stubborn_flow.yaml": """\
        ref: wfcancel.stubborn_flow
        label: stubborn flow
        version: "1.0.0"
        tasks:
          - name: hold
            action: wfcancel.stubborn
        """,
}


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    root = tmp_path_factory.mktemp("wfcancel")
    pack = root / "wfcancel"
    (pack / "pack.yaml").parent.mkdir(parents=True)
    (pack / "pack.yaml").write_text('ref: wfcancel\nlabel: Cancel\nversion: "1.0.0"\n')
    for rel, text in FILES.items():
        path = pack / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
        if rel.endswith(".sh"):
            path.chmod(0o755)
    with running_deployment(root, heartbeat_interval=5) as deployment:
        deployment.post("/api/v1/packs/register", {"path": str(pack), "skip_tests": True})
        yield deployment


def _stamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _descendants(d: Deployment, execution_id: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = d.get("/api/v1/executions", params={"parent": execution_id, "per_page": 100})
    return [*rows, *(row for child in rows for row in _descendants(d, child["id"]))]


def _wait(probe: Any, what: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize(
    ("ref", "running"), [("wfcancel.items", 2), ("wfcancel.outer", 2), ("wfcancel.stubborn_flow", 1)]
)
def test_the_workflow_is_cancelled_within_a_second_of_its_children(
    deployment: Deployment, ref: str, running: int
) -> None:
    execution_id = int(
        deployment.post("/api/v1/executions/execute", {"action_ref": ref, "parameters": {}})["id"]
    )

    def actions_running() -> bool:
        rows = _descendants(deployment, execution_id)
        # Actions (not nested workflows) that have a process: what cancelling has to stop.
        actions = [
            r for r in rows if r["status"] == "running" and not r["action_ref"].startswith("wfcancel.")
        ]
        actions += [r for r in rows if r["status"] == "running" and r["action_ref"] == "wfcancel.stubborn"]
        return len(actions) >= running

    _wait(actions_running, f"{running} running action(s) of {ref}")
    deployment.post(f"/api/v1/executions/{execution_id}/cancel")
    parent = _wait(
        lambda: (row := deployment.get(f"/api/v1/executions/{execution_id}"))["status"] in TERMINAL and row,
        f"{ref} to end",
        timeout=60,
    )
    assert parent["status"] == "cancelled"
    children = _descendants(deployment, execution_id)
    assert children and all(c["status"] in TERMINAL for c in children), children
    last_child = max(_stamp(c["updated"]) for c in children)
    lag = (_stamp(parent["updated"]) - last_child).total_seconds()
    assert lag <= 1.0, f"{ref}: cancelled {lag:.1f} s after its last child"
