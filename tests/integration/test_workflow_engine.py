"""The workflow engine against the database (docs/workflows.md): start and advance.

The tests drive :class:`WorkflowEngine` directly and play the worker by ending child executions; this
module holds those helpers too. test_workflow_engine_control has timers and control, and
test_workflow_engine_service runs the whole executor service to check the wiring.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from attune.db import models
from attune.db.outbox import enqueue
from attune.db.repos import executions as execution_repo
from attune.db.repos import workflows as repo
from attune.db.types import utcnow
from attune.messaging.messages import MessageType
from attune.platform import Platform
from attune.workflow.engine import (
    STATE_KEY,
    WorkflowEngine,
    definitions,
    rerun_workflow,
)
from attune.workflow.spec import parse_workflow
from tests.integration.test_executor import (
    clean_bus,  # noqa: F401 - fixture
)

# -- helpers ---------------------------------------------------------------------------------------


async def seed(platform: Platform) -> models.Pack:
    """Pack ``demo`` with actions ``demo.run`` (param ``x``) and ``demo.other``."""
    async with platform.db.transaction() as session:
        pack = models.Pack(ref="demo", label="demo", version="1.0.0", config={})
        session.add(pack)
        await session.flush()
        for name in ("run", "other"):
            session.add(
                models.Action(
                    ref=f"demo.{name}",
                    pack=pack.id,
                    pack_ref="demo",
                    label=name,
                    description="",
                    entrypoint=f"{name}.sh",
                    param_schema={"x": {"type": "integer"}} if name == "run" else None,
                    max_retries=3,
                )
            )
        await session.flush()
    return pack


async def define(platform: Platform, pack: models.Pack, doc: dict[str, Any], *, enabled: bool = True) -> str:
    """Store a workflow definition and its companion action; return the ref."""
    doc = {"label": doc["ref"], "version": "1.0.0", **doc}
    spec = parse_workflow(doc)
    async with platform.db.transaction() as session:
        await repo.save_definition(
            session,
            pack,
            spec.ref,
            definitions.definition_values(spec, enabled=enabled),
            entrypoint="workflow",
        )
    return spec.ref


async def execute(platform: Platform, ref: str, params: dict[str, Any] | None = None) -> int:
    async with platform.db.transaction() as session:
        action = await session.scalar(sa.select(models.Action).where(models.Action.ref == ref))
        assert action is not None
        execution = await execution_repo.request_execution(
            session, action, params or {}, box=None, source_service="test"
        )
    return execution.id


async def execution(platform: Platform, execution_id: int) -> models.Execution:
    async with platform.db.session() as session:
        row = await session.get(models.Execution, execution_id)
    assert row is not None
    return row


async def children(platform: Platform, parent: int) -> list[models.Execution]:
    async with platform.db.session() as session:
        query = (
            sa.select(models.Execution).where(models.Execution.parent == parent).order_by(models.Execution.id)
        )
        return list((await session.execute(query)).scalars())


async def state_row(platform: Platform, execution_id: int) -> models.WorkflowExecution:
    async with platform.db.session() as session:
        row = await repo.execution_state(session, execution_id)
    assert row is not None
    return row


async def finish(
    platform: Platform, execution_id: int, status: str = "completed", result: Any = None
) -> None:
    """Play the worker: end a child and stage ``ExecutionCompleted``."""
    async with platform.db.transaction() as session:
        row = await session.get(models.Execution, execution_id)
        assert row is not None
        row.status = status
        row.result = result if result is not None else {"succeeded": status == "completed", "data": {}}
        enqueue(
            session,
            MessageType.EXECUTION_COMPLETED,
            {
                "execution_id": row.id,
                "action_id": row.action or 0,
                "action_ref": row.action_ref,
                "status": status,
                "result": row.result,
                "completed_at": utcnow().isoformat(),
            },
            source_service="worker",
        )


async def finish_and_advance(
    platform: Platform, engine: WorkflowEngine, child: int, status: str = "completed", result: Any = None
) -> None:
    await finish(platform, child, status, result)
    await engine.child_finished(child)


SEQUENTIAL = {
    "ref": "demo.seq",
    "parameters": {"start": {"type": "integer", "default": 1}},
    "vars": {"total": 0},
    "tasks": [
        {
            "name": "first",
            "action": "demo.run",
            "input": {"x": "{{ parameters.start }}"},
            "next": [
                {
                    "when": "{{ succeeded() }}",
                    "publish": [{"total": "{{ result().data.n }}"}],
                    "do": ["second"],
                }
            ],
        },
        {"name": "second", "action": "demo.other", "input": {"label": "total={{ vars.total }}"}},
    ],
    "output_map": {"total": "{{ vars.total }}"},
}


# -- start and advance -----------------------------------------------------------------------------


async def test_a_sequential_workflow_runs_its_tasks_in_order_and_completes(platform: Platform) -> None:
    pack = await seed(platform)
    ref = await define(platform, pack, SEQUENTIAL)
    engine = WorkflowEngine(platform)
    parent_id = await execute(platform, ref, {"start": 5})
    await engine.start(parent_id)

    parent = await execution(platform, parent_id)
    assert (parent.status, parent.started_at is not None) == ("running", True)
    [first] = await children(platform, parent_id)
    assert (first.action_ref, first.config, first.status) == ("demo.run", {"x": 5}, "requested")
    row = await state_row(platform, parent_id)
    assert first.workflow_task["workflow_execution"] == row.id
    assert (first.workflow_task["task_name"], first.workflow_task["task_index"]) == ("first", None)
    assert (first.workflow_execution_id, first.workflow_task_name) == (row.id, "first")
    assert first.max_retries == 0  # retries of a task belong to the workflow, not the action
    assert row.current_tasks == ["first"]

    await finish_and_advance(platform, engine, first.id, result={"succeeded": True, "data": {"n": 42}})
    _, second = await children(platform, parent_id)
    assert (second.action_ref, second.config) == ("demo.other", {"label": "total=42"})
    await finish_and_advance(platform, engine, second.id)

    parent = await execution(platform, parent_id)
    assert parent.status == "completed"
    assert parent.result["succeeded"] is True
    assert parent.result["output"] == {"total": 42}
    row = await state_row(platform, parent_id)
    assert (row.status, row.current_tasks, sorted(row.completed_tasks or [])) == (
        "completed",
        [],
        ["first", "second"],
    )


async def test_a_run_keeps_its_graph_when_the_definition_is_edited_into_an_invalid_one(
    platform: Platform,
) -> None:
    pack = await seed(platform)
    ref = await define(platform, pack, SEQUENTIAL)
    parent_id = await execute(platform, ref, {"start": 5})
    await WorkflowEngine(platform).start(parent_id)
    async with platform.db.transaction() as session:
        definition = await session.scalar(
            sa.select(models.WorkflowDefinition).where(models.WorkflowDefinition.ref == ref)
        )
        assert definition is not None
        definition.definition = {"tasks": [{"name": "broken", "action": "demo.run", "next": "nowhere"}]}
        definition.updated = utcnow()
    [first] = await children(platform, parent_id)
    # A fresh engine has no parsed spec cached: it must fall back to the run's own graph.
    await finish_and_advance(
        platform, WorkflowEngine(platform), first.id, result={"succeeded": True, "data": {"n": 7}}
    )
    _, second = await children(platform, parent_id)
    assert (second.action_ref, second.config) == ("demo.other", {"label": "total=7"})
    await finish_and_advance(platform, WorkflowEngine(platform), second.id)
    parent = await execution(platform, parent_id)
    assert (parent.status, parent.result["output"]) == ("completed", {"total": 7})


async def test_a_redelivered_completion_is_counted_once(platform: Platform) -> None:
    pack = await seed(platform)
    ref = await define(platform, pack, SEQUENTIAL)
    engine = WorkflowEngine(platform)
    parent_id = await execute(platform, ref)
    await engine.start(parent_id)
    [first] = await children(platform, parent_id)
    await finish_and_advance(platform, engine, first.id, result={"succeeded": True, "data": {"n": 1}})
    await engine.child_finished(first.id)
    await engine.child_finished(first.id)
    assert [c.workflow_task_name for c in await children(platform, parent_id)] == ["first", "second"]


def fan_out(items: list[int], *, concurrency: int) -> dict[str, Any]:
    """demo.fan: task ``each`` runs demo.run with x = each of ``items``; output ``all`` = its results."""
    return {
        "ref": "demo.fan",
        "vars": {"items": items},
        "tasks": [
            {
                "name": "each",
                "action": "demo.run",
                "with_items": "{{ vars.items }}",
                "concurrency": concurrency,
                "input": {"x": "{{ item }}"},
            }
        ],
        "output_map": {"all": "{{ task.each.results }}"},
    }


@pytest.mark.parametrize("restart", [False, True], ids=["one-engine", "engine-per-step"])
async def test_with_items_respects_concurrency_and_keeps_results_in_order(
    platform: Platform, restart: bool
) -> None:
    """``engine-per-step`` rebuilds the run from the database at every step, as after a restart or
    when another executor took the previous step."""
    pack = await seed(platform)
    ref = await define(platform, pack, fan_out([10, 20, 30, 40, 50], concurrency=2))
    shared = WorkflowEngine(platform)

    def engine() -> WorkflowEngine:
        return WorkflowEngine(platform) if restart else shared

    parent_id = await execute(platform, ref)
    await engine().start(parent_id)
    started = await children(platform, parent_id)
    assert [(c.config["x"], c.workflow_task["task_index"]) for c in started] == [(10, 0), (20, 1)]
    # Finish out of order: item 1 first, then the rest as they come.
    await finish_and_advance(platform, engine(), started[1].id, result={"succeeded": True, "data": {"v": 20}})
    assert len(await children(platform, parent_id)) == 3
    while True:
        pending = [c for c in await children(platform, parent_id) if c.status == "requested"]
        if not pending:
            break
        live = len(pending)
        assert live <= 2
        child = pending[-1]
        await finish_and_advance(
            platform, engine(), child.id, result={"succeeded": True, "data": {"v": child.config["x"]}}
        )
    parent = await execution(platform, parent_id)
    assert parent.status == "completed", parent.result
    outputs = [entry["output"]["data"]["v"] for entry in parent.result["output"]["all"]]
    assert outputs == [10, 20, 30, 40, 50]


async def test_with_items_rerun_after_a_restart_reruns_only_the_failed_item(platform: Platform) -> None:
    pack = await seed(platform)
    ref = await define(platform, pack, fan_out([1, 2, 3, 4], concurrency=4))
    parent_id = await execute(platform, ref)
    await WorkflowEngine(platform).start(parent_id)
    for child in await children(platform, parent_id):
        x = child.config["x"]
        status = "failed" if x == 3 else "completed"
        result = {"succeeded": status == "completed", "data": {"v": x}}
        await finish_and_advance(platform, WorkflowEngine(platform), child.id, status, result)
    assert (await execution(platform, parent_id)).status == "failed"
    # Item lists live in their own table, not in the run's state document.
    stored = (await state_row(platform, parent_id)).variables[STATE_KEY]["tasks"]["each"]
    assert "results" not in stored and "items" not in stored
    async with platform.db.transaction() as session:
        row = await session.get(models.Execution, parent_id)
        assert row is not None
        await rerun_workflow(session, row, WorkflowEngine(platform).context())
    again = [c for c in await children(platform, parent_id) if c.status == "requested"]
    assert [c.config["x"] for c in again] == [3]
    await finish_and_advance(
        platform, WorkflowEngine(platform), again[0].id, result={"succeeded": True, "data": {"v": 3}}
    )
    parent = await execution(platform, parent_id)
    assert parent.status == "completed", parent.result
    assert [entry["output"]["data"]["v"] for entry in parent.result["output"]["all"]] == [1, 2, 3, 4]


async def test_a_disabled_workflow_fails_at_once(platform: Platform) -> None:
    pack = await seed(platform)
    ref = await define(platform, pack, SEQUENTIAL, enabled=False)
    engine = WorkflowEngine(platform)
    parent_id = await execute(platform, ref)
    await engine.start(parent_id)
    parent = await execution(platform, parent_id)
    assert parent.status == "failed"
    assert parent.result == {"error": "Workflow 'demo.seq' is disabled", "succeeded": False}
    assert await children(platform, parent_id) == []


async def test_a_task_whose_action_does_not_exist_fails_the_workflow(platform: Platform) -> None:
    pack = await seed(platform)
    ref = await define(
        platform, pack, {"ref": "demo.broken", "tasks": [{"name": "ghost", "action": "demo.missing"}]}
    )
    engine = WorkflowEngine(platform)
    parent_id = await execute(platform, ref)
    await engine.start(parent_id)
    parent = await execution(platform, parent_id)
    assert parent.status == "failed"
    assert "ghost" in parent.result["error"]
    assert await children(platform, parent_id) == []


async def test_invalid_task_parameters_fail_the_task_not_the_engine(platform: Platform) -> None:
    pack = await seed(platform)
    ref = await define(
        platform,
        pack,
        {
            "ref": "demo.badinput",
            "tasks": [{"name": "t", "action": "demo.run", "input": {"x": "not-a-number"}}],
        },
    )
    engine = WorkflowEngine(platform)
    parent_id = await execute(platform, ref)
    await engine.start(parent_id)
    parent = await execution(platform, parent_id)
    assert parent.status == "failed"
    row = await state_row(platform, parent_id)
    assert row.failed_tasks == ["t"]


async def test_the_task_timeout_is_carried_to_the_child(platform: Platform) -> None:
    pack = await seed(platform)
    ref = await define(
        platform, pack, {"ref": "demo.slow", "tasks": [{"name": "t", "action": "demo.other", "timeout": 7}]}
    )
    engine = WorkflowEngine(platform)
    parent_id = await execute(platform, ref)
    await engine.start(parent_id)
    [child] = await children(platform, parent_id)
    assert child.workflow_task["timeout_seconds"] == 7
    await finish_and_advance(platform, engine, child.id, status="timeout", result={"succeeded": False})
    assert (await execution(platform, parent_id)).status == "failed"


async def test_a_nested_workflow_reports_to_its_parent(platform: Platform) -> None:
    pack = await seed(platform)
    await define(platform, pack, {"ref": "demo.inner", "tasks": [{"name": "leaf", "action": "demo.other"}]})
    outer = await define(
        platform, pack, {"ref": "demo.outer", "tasks": [{"name": "sub", "action": "demo.inner"}]}
    )
    engine = WorkflowEngine(platform)
    outer_id = await execute(platform, outer)
    await engine.start(outer_id)
    [inner] = await children(platform, outer_id)
    assert inner.is_workflow
    await engine.start(inner.id)  # what the scheduler does when the child is requested
    [leaf] = await children(platform, inner.id)
    await finish_and_advance(platform, engine, leaf.id)
    assert (await execution(platform, inner.id)).status == "completed"
    await engine.child_finished(inner.id)  # the completion listener hears the inner workflow end
    assert (await execution(platform, outer_id)).status == "completed"
