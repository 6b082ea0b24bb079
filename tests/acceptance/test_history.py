"""Execution history and analytics against real processes.

The SQLite pass runs the embedded server (one process, memory bus, retention service included);
the PostgreSQL pass runs the scaled deployment (api, executor, worker and sensor processes on
RabbitMQ). Either way the history rows are written by whichever process changes the execution.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from attune.testing.deployment import Deployment
from tests.acceptance.harness import running_deployment


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with running_deployment(tmp_path_factory.mktemp("history")) as deployment:
        yield deployment


def test_execution_history_shows_the_insert_and_every_status_change(deployment: Deployment) -> None:
    execution_id = int(deployment.post("/api/v1/executions/execute", {"action_ref": "core.noop"})["id"])
    deployment.wait_execution(execution_id, {"completed", "failed"}, timeout=30)

    records = deployment.get(f"/api/v1/executions/{execution_id}/history")
    status_changes = deployment.get(
        f"/api/v1/executions/{execution_id}/history", params={"changed_field": "status"}
    )

    assert records[-1]["operation"] == "INSERT"
    assert records[-1]["old_values"] is None
    assert records[-1]["new_values"]["status"] == "requested"
    assert records[-1]["new_values"]["action_ref"] == "core.noop"
    assert {r["entity_id"] for r in records} == {execution_id}
    transitions = [(r["old_values"]["status"], r["new_values"]["status"]) for r in reversed(status_changes)]
    assert transitions == [("requested", "scheduled"), ("scheduled", "running"), ("running", "completed")]
    final = status_changes[0]
    assert final["changed_fields"][0] == "status"
    assert "result" in final["changed_fields"]
    assert final["new_values"]["result"]["digest"].startswith("md5:")
    assert [r["time"] for r in records] == sorted((r["time"] for r in records), reverse=True)


def test_analytics_count_the_execution(deployment: Deployment) -> None:
    execution_id = int(deployment.post("/api/v1/executions/execute", {"action_ref": "core.noop"})["id"])
    deployment.wait_execution(execution_id, {"completed", "failed"}, timeout=30)
    inserts = deployment.request(
        "GET", "/api/v1/history/execution", params={"operation": "insert", "page_size": 1}
    ).json()["pagination"]["total_items"]

    dashboard = deployment.get("/api/v1/analytics/dashboard", params={"hours": 2})

    assert sum(p["value"] for p in dashboard["execution_throughput"]) == inserts
    completed = sum(p["value"] for p in dashboard["execution_status"] if p["label"] == "completed")
    assert completed == dashboard["failure_rate"]["completed_count"] >= 1
    assert "retention pass failed" not in deployment.log_text()
