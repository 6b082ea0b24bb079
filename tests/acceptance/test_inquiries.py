"""Human-in-the-loop inquiries end to end, against real processes.

The SQLite pass runs the embedded server (one process, memory bus); the PostgreSQL pass runs the
scaled deployment (api, executor, worker and sensor as separate processes on RabbitMQ). The worker
runs one task at a time, so an execution waiting on an inquiry visibly holds no worker slot.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from attune.testing.deployment import Deployment
from tests.acceptance.harness import running_deployment

APPROVAL = {"approved": {"type": "boolean", "required": True}, "comment": {"type": "string"}}


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with running_deployment(
        tmp_path_factory.mktemp("inquiries"), extra_env={"ATTUNE__WORKER__MAX_CONCURRENT_TASKS": "1"}
    ) as deployment:
        deployment.post("/api/v1/packs", {"ref": "acc", "label": "Acceptance", "version": "1.0.0"})
        yield deployment


def _run(d: Deployment, action_ref: str, parameters: dict[str, Any] | None = None) -> int:
    data = d.post("/api/v1/executions/execute", {"action_ref": action_ref, "parameters": parameters or {}})
    return int(data["id"])


def _ask(d: Deployment, **parameters: Any) -> int:
    return _run(d, "core.ask", {"prompt": "Deploy to production?", **parameters})


def _pending_inquiry(d: Deployment, execution_id: int, timeout: float = 15) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows: list[dict[str, Any]] = d.get(f"/api/v1/executions/{execution_id}/inquiries")
        pending = [row for row in rows if row["status"] == "pending"]
        if pending:
            return pending[0]
        time.sleep(0.05)
    raise AssertionError(f"execution {execution_id} opened no inquiry\n{d.log_text()}")


def _respond(d: Deployment, inquiry_id: int, response: Any, token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else d.headers
    return httpx.post(
        f"{d.base}/api/v1/inquiries/{inquiry_id}/respond",
        json={"response": response},
        headers=headers,
        timeout=30,
    )


def _register(d: Deployment) -> str:
    """A token of a new operator: it may answer inquiries, but not one assigned to someone else."""
    body = {"login": f"approver-{uuid.uuid4().hex[:8]}", "password": "Approver-Passw0rd"}
    created = httpx.post(f"{d.base}/api/v1/identities", json=body, headers=d.headers, timeout=10)
    assert created.status_code == 201, created.text
    grant = {"identity_id": created.json()["data"]["id"], "permission_set_ref": "core.operator"}
    assigned = httpx.post(
        f"{d.base}/api/v1/permissions/assignments", json=grant, headers=d.headers, timeout=10
    )
    assert assigned.status_code == 201, assigned.text
    response = httpx.post(f"{d.base}/auth/login", json=body, timeout=10)
    assert response.status_code == 200, response.text
    return str(response.json()["data"]["access_token"])


def _me(d: Deployment) -> int:
    response = httpx.get(f"{d.base}/auth/me", headers=d.headers, timeout=10)
    assert response.status_code == 200, response.text
    return int(response.json()["data"]["id"])


def test_an_inquiry_waits_validates_checks_the_assignee_and_completes(deployment: Deployment) -> None:
    execution_id = _ask(deployment, response_schema=APPROVAL, assigned_to=_me(deployment))
    inquiry = _pending_inquiry(deployment, execution_id)
    waiting = deployment.get(f"/api/v1/executions/{execution_id}")
    assert waiting["status"] == "running" and waiting["worker"] is None, waiting

    # The only worker slot is free: another action runs to completion meanwhile.
    other = deployment.wait_execution(_run(deployment, "core.echo", {"message": "meanwhile"}), {"completed"})
    assert other["result"]["stdout"] == "meanwhile"

    wrong = _respond(deployment, inquiry["id"], {"approved": "yes"})
    assert wrong.status_code == 422, wrong.text
    assert wrong.json()["code"] == "VALIDATION_ERROR" and "/approved" in wrong.json()["error"]

    stranger = _respond(deployment, inquiry["id"], {"approved": True}, token=_register(deployment))
    assert stranger.status_code == 403, stranger.text
    assert stranger.json()["error"] == "You are not authorized to respond to this inquiry"
    assert deployment.get(f"/api/v1/executions/{execution_id}")["status"] == "running"

    answer = {"approved": True, "comment": "ship it"}
    right = _respond(deployment, inquiry["id"], answer)
    assert right.status_code == 200, right.text
    assert right.json()["data"]["status"] == "responded"
    done = deployment.wait_execution(execution_id, {"completed", "failed", "timeout"})
    assert done["status"] == "completed", done
    assert done["result"]["data"] == answer
    assert done["result"]["__inquiry_response"] == answer


def test_an_unanswered_inquiry_with_a_2s_ttl_times_out(deployment: Deployment) -> None:
    started = time.monotonic()
    execution_id = _ask(deployment, timeout_seconds=2)
    inquiry = _pending_inquiry(deployment, execution_id)
    done = deployment.wait_execution(execution_id, {"completed", "failed", "timeout"}, timeout=10)
    assert done["status"] == "timeout", done
    assert done["result"]["error"] == f"Inquiry {inquiry['id']} timed out"
    assert time.monotonic() - started >= 2
    assert deployment.get(f"/api/v1/inquiries/{inquiry['id']}")["status"] == "timeout"
    late = _respond(deployment, inquiry["id"], {"approved": True})
    assert late.status_code == 400


def _children(d: Deployment, parent: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = d.get("/api/v1/executions", params={"parent": parent, "per_page": 100})
    return rows


def _child(d: Deployment, parent: int, task: str, timeout: float = 15) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for row in _children(d, parent):
            if (row.get("workflow_task") or {}).get("task_name") == task:
                return row
        time.sleep(0.1)
    raise AssertionError(f"workflow {parent} never started task {task}\n{d.log_text()}")


def test_a_two_approval_workflow_completes_only_after_both_answers(deployment: Deployment) -> None:
    ref = f"acc.approve_{uuid.uuid4().hex[:8]}"

    def ask(prompt: str, then: str) -> dict[str, Any]:
        return {
            "action": "core.ask",
            "input": {"prompt": prompt, "response_schema": APPROVAL},
            "next": [{"when": "{{ succeeded() }}", "do": [then]}],
        }

    definition = {
        "ref": ref,
        "label": "Two approvals",
        "version": "1.0.0",
        "tasks": [
            {"name": "first_approval", **ask("Approve (1/2)?", "second_approval")},
            {"name": "second_approval", **ask("Approve (2/2)?", "announce")},
            {
                "name": "announce",
                "action": "core.echo",
                "input": {"message": "{{ task.second_approval.data.comment }}"},
            },
        ],
    }
    deployment.post(
        "/api/v1/workflows",
        {
            "ref": ref,
            "pack_ref": "acc",
            "label": "Two approvals",
            "version": "1.0.0",
            "definition": definition,
        },
    )
    workflow_id = _run(deployment, ref)

    first = _child(deployment, workflow_id, "first_approval")
    inquiry = _pending_inquiry(deployment, first["id"])
    time.sleep(0.5)
    assert deployment.get(f"/api/v1/executions/{workflow_id}")["status"] == "running"
    assert [row["workflow_task"]["task_name"] for row in _children(deployment, workflow_id)] == [
        "first_approval"
    ]
    assert _respond(deployment, inquiry["id"], {"approved": True}).status_code == 200

    second = _child(deployment, workflow_id, "second_approval")
    inquiry = _pending_inquiry(deployment, second["id"])
    time.sleep(0.5)
    assert deployment.get(f"/api/v1/executions/{workflow_id}")["status"] == "running"
    assert not any(
        row["workflow_task"]["task_name"] == "announce" for row in _children(deployment, workflow_id)
    )
    assert (
        _respond(deployment, inquiry["id"], {"approved": True, "comment": "both approved"}).status_code == 200
    )

    done = deployment.wait_execution(workflow_id, {"completed", "failed", "timeout"}, timeout=20)
    assert done["status"] == "completed", done
    announce = _child(deployment, workflow_id, "announce")
    assert deployment.get(f"/api/v1/executions/{announce['id']}")["result"]["stdout"] == "both approved"
