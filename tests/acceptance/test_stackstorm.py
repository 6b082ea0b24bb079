"""A StackStorm-format pack registers unmodified and runs end to end (docs/stackstorm.md).

The pack (tests/st2_pack.py) has a ``python-script`` action subclassing
``st2common.runners.base_action.Action`` that uses ``self.config`` and ``self.action_service``, a
``PollingSensor`` with an inline trigger type, a rule with st2 ``criteria`` and ``{{ trigger.x }}``
parameters, and an Orquesta workflow mixing YAQL and Jinja that calls the action and ``core.local``.
The SQLite pass runs the embedded server, the PostgreSQL pass the scaled deployment.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from attune.testing.deployment import Deployment
from tests.acceptance.harness import running_deployment
from tests.st2_pack import write_st2_pack

pytestmark = pytest.mark.slow

TERMINAL = {"completed", "failed", "timeout", "cancelled"}


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Deployment, dict[str, Any]]]:
    root = tmp_path_factory.mktemp("stackstorm")
    with running_deployment(root) as deployment:
        pack_dir = write_st2_pack(deployment.workdir / "packs")
        registered = deployment.post("/api/v1/packs/register", {"path": str(pack_dir), "skip_tests": True})
        yield deployment, registered


def run(d: Deployment, ref: str, parameters: dict[str, Any]) -> dict[str, Any]:
    data = d.post("/api/v1/executions/execute", {"action_ref": ref, "parameters": parameters})
    return d.wait_execution(int(data["id"]), TERMINAL, timeout=90)


def test_the_pack_registers_and_reports_what_it_skipped(
    deployment: tuple[Deployment, dict[str, Any]],
) -> None:
    d, registered = deployment
    assert registered["ref"] == "st2demo"
    warnings = "\n".join(registered["warnings"])
    assert "actions/remote.yaml: remote commands over SSH (remote-shell-cmd) is not supported" in warnings
    assert "aliases/: ChatOps action aliases are not supported" in warnings
    assert d.get("/api/v1/actions/st2demo.greet")["ref"] == "st2demo.greet"
    assert d.get("/api/v1/rules/st2demo.on_tick")["trigger_ref"] == "st2demo.tick"


def test_a_python_action_gets_its_config_keys_and_st2_result(
    deployment: tuple[Deployment, dict[str, Any]],
) -> None:
    d, _ = deployment
    execution = run(d, "st2demo.greet", {"name": "Ada", "shout": True})
    assert execution["status"] == "completed", execution
    result = execution["result"]
    assert result["result"] == {"message": "HELLO, ADA", "previous": "Ada"}
    assert result["stdout"] == "about to greet\n"
    assert result["exit_code"] == 0
    assert d.get("/api/v1/keys/st2demo.last_greeted")["value"] == "Ada"


def test_a_false_tuple_fails_the_action(deployment: tuple[Deployment, dict[str, Any]]) -> None:
    d, _ = deployment
    execution = run(d, "st2demo.greet", {"name": "nobody"})
    assert execution["status"] == "failed"
    assert execution["result"]["result"] == {"message": "nobody to greet"}


def test_the_orquesta_workflow_runs_the_action_and_core_local(
    deployment: tuple[Deployment, dict[str, Any]],
) -> None:
    d, _ = deployment
    execution = run(d, "st2demo.flow", {"name": "Grace"})
    assert execution["status"] == "completed", execution
    assert execution["result"]["output"] == {"message": "Hello, Grace", "echoed": "Hello, Grace"}


def test_the_sensor_fires_the_rule_with_st2_criteria(deployment: tuple[Deployment, dict[str, Any]]) -> None:
    d, _ = deployment
    deadline = time.monotonic() + 90
    flows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        rows = d.get("/api/v1/executions", params={"action_ref": "st2demo.flow", "per_page": 50})
        flows = [row for row in rows if row.get("enforcement") is not None]
        if flows and flows[0]["status"] in TERMINAL:
            break
        time.sleep(0.5)
    assert len(flows) == 1, flows  # only the second tick matches the criteria
    execution = d.get(f"/api/v1/executions/{flows[0]['id']}")
    assert execution["config"]["name"] == "tick 2"
    assert execution["status"] == "completed", execution
    assert execution["result"]["output"]["message"] == "Hello, tick 2"
