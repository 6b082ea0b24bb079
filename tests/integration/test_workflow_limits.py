"""The workflow validator refuses what could never run well (docs/workflows.md): a workflow with no
entry task (a pure cycle would "complete" having run nothing) and one past the task limit
(``executor.workflow_max_tasks``, default 1,000), with a 422 that says why."""

from __future__ import annotations

import itertools
from typing import Any

import httpx
import pytest

from attune.platform import Platform
from attune.workflow.spec import WorkflowValidationError, parse_workflow
from tests.integration.test_workflow_routes import create_body, pack  # noqa: F401 - fixture

CYCLE = {
    "tasks": [
        {"name": "ping", "action": "core.noop", "next": [{"do": ["pong"]}]},
        {"name": "pong", "action": "core.noop", "next": [{"do": ["ping"]}]},
    ]
}


def chain(length: int) -> dict[str, Any]:
    tasks: list[dict[str, Any]] = [{"name": f"t{i}", "action": "core.noop"} for i in range(length)]
    for current, following in itertools.pairwise(tasks):
        current["next"] = [{"do": [following["name"]]}]
    return {"tasks": tasks}


@pytest.mark.usefixtures("pack")
async def test_a_pure_cycle_is_refused_with_a_clear_message(api: httpx.AsyncClient) -> None:
    response = await api.post("/api/v1/workflows", json=create_body(definition=CYCLE))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert "no entry task" in error and "ping" in error and "pong" in error


@pytest.mark.usefixtures("pack")
async def test_a_cycle_inside_a_parallel_block_is_refused(api: httpx.AsyncClient) -> None:
    block = {"tasks": [{"name": "both", "type": "parallel", "tasks": CYCLE["tasks"]}]}
    response = await api.post("/api/v1/workflows", json=create_body(definition=block))
    assert response.status_code == 422, response.text
    assert "parallel task 'both' has no entry task" in response.json()["error"]


@pytest.mark.usefixtures("pack")
async def test_more_tasks_than_the_default_limit_are_refused(api: httpx.AsyncClient) -> None:
    response = await api.post("/api/v1/workflows", json=create_body(definition=chain(1_001)))
    assert response.status_code == 422, response.text
    assert "declares 1001 tasks; at most 1000 are allowed" in response.json()["error"]
    accepted = await api.post("/api/v1/workflows", json=create_body("wf.big", definition=chain(1_000)))
    assert accepted.status_code == 201, accepted.text[:300]


@pytest.mark.usefixtures("pack")
async def test_the_task_limit_is_configurable(api: httpx.AsyncClient, platform: Platform) -> None:
    platform.settings.executor.workflow_max_tasks = 3
    refused = await api.post("/api/v1/workflows", json=create_body(definition=chain(4)))
    assert refused.status_code == 422
    assert "at most 3 are allowed" in refused.json()["error"]
    assert (await api.post("/api/v1/workflows", json=create_body(definition=chain(3)))).status_code == 201
    checked = await api.post("/api/v1/workflows/validate", json={"definition": {**chain(4), "ref": "wf.x"}})
    assert checked.json()["data"]["valid"] is False


def test_the_parser_refuses_both_whatever_the_entry_point() -> None:
    doc = {"ref": "wf.c", "label": "c", "version": "1", **CYCLE}
    with pytest.raises(WorkflowValidationError, match="no entry task"):
        parse_workflow(doc)
    with pytest.raises(WorkflowValidationError, match="at most 10 are allowed"):
        parse_workflow({"ref": "wf.c", "label": "c", "version": "1", **chain(11)}, max_tasks=10)
