"""Cancelling a running workflow ends it ``cancelled`` within a second of its running children's own
cancellation (docs/workflows.md), whatever the shape: with-items, a nested workflow, an action
that ignores SIGTERM, a child whose worker is still waiting for its pack's environment (issue #11's
tens of seconds). Embedded in the SQLite pass, scaled in the PostgreSQL pass."""

from __future__ import annotations

import contextlib
import fcntl
import os
import textwrap
import threading
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


#: How long the pack's environment takes to build in the test below (a virtualenv plus a
#: ``pip install`` of the pack's requirements takes tens of seconds on a real pack).
BUILD_SECONDS = 30.0
PREP_FILES = {
    "actions/nap.yaml": """\
        ref: wfprep.nap
        label: a Python action
        runner_type: python
        entry_point: nap.py
        """,
    "actions/nap.py": "import time\n\ntime.sleep(60)\n",
    "workflows/nap_flow.yaml": """\
        ref: wfprep.nap_flow
        label: nap flow
        version: "1.0.0"
        tasks:
          - name: nap
            action: wfprep.nap
        """,
}


@contextlib.contextmanager
def _environment_being_built(envs_dir: str, pack_ref: str) -> Iterator[threading.Timer]:
    """Hold the worker's cross-process lock on every Python environment of ``pack_ref``, as a
    worker building it does (``{env_dir}.lock``, docs/packs.md), until the returned timer fires
    (the build ends) or the block exits."""
    base = os.path.join(envs_dir, pack_ref)
    os.makedirs(base, exist_ok=True)
    names = ["python", *(f"python-3.{minor}" for minor in range(6, 16))]
    fds = [os.open(os.path.join(base, f"{name}.lock"), os.O_RDWR | os.O_CREAT, 0o644) for name in names]
    released = threading.Lock()

    def release() -> None:
        with released:
            while fds:
                fd = fds.pop()
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)

    for fd in fds:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    timer = threading.Timer(BUILD_SECONDS, release)
    try:
        yield timer
    finally:
        timer.cancel()
        release()


def test_a_child_waiting_for_its_environment_is_cancelled_at_once(
    deployment: Deployment, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The worker has claimed the child (``running``) but is still waiting for the pack's
    environment to be built. The cancel must not wait for the build: the child and then the
    workflow end ``cancelled`` within seconds, not when the build is done."""
    pack = tmp_path_factory.mktemp("wfprep") / "wfprep"
    pack.mkdir()
    (pack / "pack.yaml").write_text('ref: wfprep\nlabel: Prep\nversion: "1.0.0"\n')
    for rel, text in PREP_FILES.items():
        path = pack / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    envs_dir = str(deployment.workdir / "data" / "runtime_envs")
    with _environment_being_built(envs_dir, "wfprep") as build:
        deployment.post("/api/v1/packs/register", {"path": str(pack), "skip_tests": True})
        build.start()
        body = {"action_ref": "wfprep.nap_flow", "parameters": {}}
        execution_id = int(deployment.post("/api/v1/executions/execute", body)["id"])
        _wait(
            lambda: any(r["status"] == "running" for r in _descendants(deployment, execution_id)),
            "the child to be claimed by the worker",
        )
        time.sleep(0.5)  # the worker is past the claim, waiting for the environment
        requested = time.monotonic()
        deployment.post(f"/api/v1/executions/{execution_id}/cancel")
        parent = _wait(
            lambda: (
                (row := deployment.get(f"/api/v1/executions/{execution_id}"))["status"] in TERMINAL and row
            ),
            "wfprep.nap_flow to end",
            timeout=BUILD_SECONDS + 60,
        )
        took = time.monotonic() - requested
    assert parent["status"] == "cancelled"
    children = _descendants(deployment, execution_id)
    assert [c["status"] for c in children] == ["cancelled"], children
    assert took <= 5.0, f"wfprep.nap_flow reached cancelled {took:.1f} s after the cancel request"
