"""The workflow engine against the database (docs/workflows.md): start, advance, timers, control.

Most tests drive :class:`WorkflowEngine` directly and play the worker by ending child executions;
the last ones run the whole executor service to check the wiring (scheduler hand-off, completion
listener, timer loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa

from attune.db import models
from attune.db.outbox import enqueue
from attune.db.repos import executions as execution_repo
from attune.db.repos import workflows as repo
from attune.db.types import utcnow
from attune.executor.service import ExecutorService
from attune.messaging.messages import Envelope, MessageType
from attune.messaging.topology import EXECUTIONS_EXCHANGE, QueueSpec
from attune.operations.inquiry_requests import ID_KEY
from attune.platform import Platform
from attune.testing.clock import FakeClock
from attune.workflow.engine import (
    STATE_KEY,
    WorkflowEngine,
    WorkflowStateError,
    cancel_workflow,
    definitions,
    rerun_workflow,
)
from attune.workflow.spec import parse_workflow

T = TypeVar("T")


@pytest.fixture(autouse=True)
async def clean_bus(platform: Platform) -> AsyncIterator[None]:
    yield
    delete = getattr(platform.bus, "delete_declared", None)
    if delete is not None:
        await delete()


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


class Recorder:
    def __init__(self) -> None:
        self.messages: list[Envelope] = []

    async def handle(self, envelope: Envelope) -> None:
        self.messages.append(envelope)


async def record(platform: Platform, *bindings: tuple[str, str]) -> Recorder:
    """A fresh queue bound as given; what arrives on it is recorded."""
    spec = QueueSpec(f"test.recorder.{uuid.uuid4().hex[:8]}", tuple(bindings))
    await platform.bus.declare_queue(spec)
    recorder = Recorder()
    await platform.bus.consume(spec.name, recorder.handle)
    return recorder


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


# -- timers ----------------------------------------------------------------------------------------


async def test_a_delayed_task_starts_when_its_timer_fires(platform: Platform, fake_clock: FakeClock) -> None:
    pack = await seed(platform)
    ref = await define(
        platform, pack, {"ref": "demo.later", "tasks": [{"name": "t", "action": "demo.other", "delay": 1}]}
    )
    engine = WorkflowEngine(platform)
    parent_id = await execute(platform, ref)
    await engine.start(parent_id)
    assert await children(platform, parent_id) == []
    assert await engine.sweep_timers() == 0
    fake_clock.advance(0.9)
    assert await engine.sweep_timers() == 0  # not yet due
    fake_clock.advance(0.1)
    # Another process (a restarted executor) finds the timer in the database.
    other = WorkflowEngine(platform)
    assert await other.sweep_timers() == 1
    assert len(await children(platform, parent_id)) == 1
    assert await other.sweep_timers() == 0  # fired once


async def test_a_failed_task_is_retried_after_its_delay(platform: Platform) -> None:
    pack = await seed(platform)
    ref = await define(
        platform,
        pack,
        {
            "ref": "demo.retry",
            "tasks": [{"name": "t", "action": "demo.other", "retry": {"count": 2, "delay": 0}}],
        },
    )
    engine = WorkflowEngine(platform)
    parent_id = await execute(platform, ref)
    await engine.start(parent_id)
    [first] = await children(platform, parent_id)
    await finish_and_advance(platform, engine, first.id, status="failed")
    _, second = await children(platform, parent_id)
    assert second.workflow_task["retry_count"] == 1
    assert second.workflow_task["max_retries"] == 2
    await finish_and_advance(platform, engine, second.id)
    assert (await execution(platform, parent_id)).status == "completed"


# -- control ---------------------------------------------------------------------------------------


async def test_cancel_cancels_live_children_then_the_workflow(platform: Platform) -> None:
    pack = await seed(platform)
    ref = await define(
        platform,
        pack,
        {
            "ref": "demo.par",
            "tasks": [{"name": "a", "action": "demo.other"}, {"name": "b", "action": "demo.other"}],
        },
    )
    engine = WorkflowEngine(platform)
    parent_id = await execute(platform, ref)
    await engine.start(parent_id)
    a, b = await children(platform, parent_id)
    cancels = await record(platform, (EXECUTIONS_EXCHANGE, "execution.cancel.worker.7"))
    async with platform.db.transaction() as session:  # ``a`` is running on a worker
        await session.execute(
            sa.update(models.Execution).where(models.Execution.id == a.id).values(status="running", worker=7)
        )
    async with platform.db.transaction() as session:
        parent = await session.get(models.Execution, parent_id)
        assert parent is not None
        await cancel_workflow(session, parent, engine.context())
    assert (await execution(platform, b.id)).status == "cancelled"
    assert (await execution(platform, a.id)).status == "canceling"
    assert (await execution(platform, parent_id)).status == "canceling"
    await platform.relay.flush()
    await platform.bus.join(timeout=10)
    assert [m.payload["execution_id"] for m in cancels.messages] == [a.id]

    await engine.child_finished(b.id)
    await finish_and_advance(platform, engine, a.id, status="cancelled")
    parent = await execution(platform, parent_id)
    assert parent.status == "cancelled"
    assert (await state_row(platform, parent_id)).status == "cancelled"


async def test_cancel_reaches_a_child_its_worker_claimed_meanwhile(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue #11 (a workflow took ≈70 s to reach ``cancelled``): a child the cancel reads as
    ``scheduled`` but whose worker claims it before the cancel writes (the compare-and-set then
    matches nothing) is cancelled as the running run it now is — ``canceling`` and a cancel
    request to its worker — instead of being left to run to its end."""
    pack = await seed(platform)
    ref = await define(platform, pack, {"ref": "demo.one", "tasks": [{"name": "a", "action": "demo.other"}]})
    engine = WorkflowEngine(platform)
    parent_id = await execute(platform, ref)
    await engine.start(parent_id)
    [a] = await children(platform, parent_id)
    async with platform.db.transaction() as session:  # dispatched to worker 7
        await session.execute(
            sa.update(models.Execution)
            .where(models.Execution.id == a.id)
            .values(status="scheduled", worker=7)
        )
    cancels = await record(platform, (EXECUTIONS_EXCHANGE, "execution.cancel.worker.7"))
    read = repo.task_children

    async def read_then_claimed(session: Any, *args: Any, **kwargs: Any) -> Any:
        rows = await read(session, *args, **kwargs)
        # The worker's claim lands right after this read: scheduled → running.
        await session.execute(
            sa.update(models.Execution)
            .where(models.Execution.id == a.id)
            .values(status="running")
            .execution_options(synchronize_session=False)
        )
        return rows

    monkeypatch.setattr(repo, "task_children", read_then_claimed)
    async with platform.db.transaction() as session:
        parent = await session.get(models.Execution, parent_id)
        assert parent is not None
        await cancel_workflow(session, parent, engine.context())
    monkeypatch.undo()
    assert (await execution(platform, a.id)).status == "canceling"
    await platform.relay.flush()
    await platform.bus.join(timeout=10)
    assert [m.payload["execution_id"] for m in cancels.messages] == [a.id]

    await finish_and_advance(platform, engine, a.id, status="cancelled")
    assert (await execution(platform, parent_id)).status == "cancelled"


async def test_rerun_resumes_a_failed_workflow_from_its_failed_task(platform: Platform) -> None:
    pack = await seed(platform)
    ref = await define(
        platform,
        pack,
        {
            "ref": "demo.flaky",
            "tasks": [
                {
                    "name": "ok",
                    "action": "demo.other",
                    "next": [{"when": "{{ succeeded() }}", "do": ["shaky"]}],
                },
                {"name": "shaky", "action": "demo.other", "next": [{"do": ["last"]}]},
                {"name": "last", "action": "demo.other"},
            ],
        },
    )
    engine = WorkflowEngine(platform)
    parent_id = await execute(platform, ref)
    await engine.start(parent_id)
    [ok] = await children(platform, parent_id)
    await finish_and_advance(platform, engine, ok.id)
    [_, shaky] = await children(platform, parent_id)
    await finish_and_advance(platform, engine, shaky.id, status="failed")
    # ``shaky`` has an unconditional transition: it fires, so the failure counts as handled
    # unless the conductor holds it; either way finish whatever runs.
    for child in await children(platform, parent_id):
        if child.status == "requested":
            await finish_and_advance(platform, engine, child.id, status="failed")
    parent = await execution(platform, parent_id)
    assert parent.status == "failed", parent.result
    before = {c.id for c in await children(platform, parent_id)}

    async with platform.db.transaction() as session:
        row = await session.get(models.Execution, parent_id)
        assert row is not None
        await rerun_workflow(session, row, engine.context())
    assert (await execution(platform, parent_id)).status == "running"
    new = [c for c in await children(platform, parent_id) if c.id not in before]
    assert new and all(c.workflow_task_name != "ok" for c in new)
    while pending := [c for c in await children(platform, parent_id) if c.status == "requested"]:
        await finish_and_advance(platform, engine, pending[0].id)
    parent = await execution(platform, parent_id)
    assert parent.status == "completed", parent.result


async def failed_nested_run(
    platform: Platform, engine: WorkflowEngine, *, sibling: bool = False
) -> tuple[int, int, int]:
    """demo.outer → task ``sub`` runs demo.inner → task ``leaf`` fails; returns (outer, inner, leaf).

    With ``sibling`` the outer workflow also runs task ``slow``, left running (so it has not failed).
    """
    pack = await seed(platform)
    await define(platform, pack, {"ref": "demo.inner", "tasks": [{"name": "leaf", "action": "demo.other"}]})
    tasks = [{"name": "sub", "action": "demo.inner"}]
    if sibling:
        tasks.append({"name": "slow", "action": "demo.other"})
    outer_ref = await define(platform, pack, {"ref": "demo.outer", "tasks": tasks})
    outer_id = await execute(platform, outer_ref)
    await engine.start(outer_id)
    inner = next(c for c in await children(platform, outer_id) if c.workflow_task_name == "sub")
    await engine.start(inner.id)
    [leaf] = await children(platform, inner.id)
    await finish_and_advance(platform, engine, leaf.id, status="failed")
    await engine.child_finished(inner.id)
    assert (await execution(platform, inner.id)).status == "failed"
    assert (await execution(platform, outer_id)).status == ("running" if sibling else "failed")
    return outer_id, inner.id, leaf.id


async def finish_nested_rerun(
    platform: Platform, engine: WorkflowEngine, outer_id: int, inner_id: int
) -> None:
    """Complete the new leaf run; the inner workflow, then the outer one, must complete."""
    [_, again] = await children(platform, inner_id)
    await finish_and_advance(platform, engine, again.id)
    assert (await execution(platform, inner_id)).status == "completed"
    await engine.child_finished(inner_id)
    outer = await execution(platform, outer_id)
    assert outer.status == "completed", outer.result
    assert [c.id for c in await children(platform, outer_id)] == [inner_id], "the nested run is resumed"


async def rerun(platform: Platform, engine: WorkflowEngine, execution_id: int) -> None:
    """What ``POST /executions/{id}/rerun`` does for a failed workflow execution."""
    async with platform.db.transaction() as session:
        row = await session.get(models.Execution, execution_id)
        assert row is not None
        await rerun_workflow(session, row, engine.context())


@pytest.mark.parametrize("target", ["inner", "outer"])
async def test_rerunning_either_level_of_a_failed_nested_run_resumes_both(
    platform: Platform, target: str
) -> None:
    """Re-running the inner workflow wakes its failed parent; re-running the parent resumes the
    inner workflow in place (not a fresh run of it)."""
    engine = WorkflowEngine(platform)
    outer_id, inner_id, _ = await failed_nested_run(platform, engine)
    await rerun(platform, engine, inner_id if target == "inner" else outer_id)
    assert (await execution(platform, outer_id)).status == "running"
    assert (await execution(platform, inner_id)).status == "running"
    await finish_nested_rerun(platform, engine, outer_id, inner_id)


async def test_a_nested_workflow_cannot_rerun_while_its_parent_still_runs(platform: Platform) -> None:
    engine = WorkflowEngine(platform)
    _, inner_id, _ = await failed_nested_run(platform, engine, sibling=True)
    with pytest.raises(WorkflowStateError, match="still running"):
        await rerun(platform, engine, inner_id)
    assert (await execution(platform, inner_id)).status == "failed"


# -- the executor service --------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def running_executor(platform: Platform) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(ExecutorService().run(platform, stop))
    await asyncio.sleep(0.1)
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


async def eventually(
    platform: Platform,
    probe: Callable[[], Awaitable[T | None]],
    timeout: float = 10.0,  # noqa: ASYNC109
) -> T:
    """Relay staged messages and poll ``probe`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        await platform.relay.flush()
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.05)


async def test_the_executor_runs_a_workflow_end_to_end(platform: Platform) -> None:
    pack = await seed(platform)
    await define(platform, pack, {"ref": "demo.inner", "tasks": [{"name": "leaf", "action": "demo.other"}]})
    ref = await define(
        platform,
        pack,
        {
            "ref": "demo.main",
            "tasks": [
                {"name": "sub", "action": "demo.inner", "next": [{"do": ["wait"]}]},
                {"name": "wait", "action": "demo.other", "delay": 1},
            ],
        },
    )
    async with running_executor(platform):
        parent_id = await execute(platform, ref)

        async def one_requested_leaf() -> models.Execution | None:
            for child in await children(platform, parent_id):
                for grandchild in await children(platform, child.id):
                    if grandchild.status in ("requested", "scheduled"):
                        return grandchild
            return None

        leaf = await eventually(platform, one_requested_leaf)
        await finish(platform, leaf.id)

        async def waiting_task() -> models.Execution | None:
            found = [c for c in await children(platform, parent_id) if c.workflow_task_name == "wait"]
            return found[0] if found else None

        wait = await eventually(platform, waiting_task)
        await finish(platform, wait.id)

        async def done() -> models.Execution | None:
            row = await execution(platform, parent_id)
            return row if row.status == "completed" else None

        parent = await eventually(platform, done)
    assert parent.result["succeeded"] is True
    row = await state_row(platform, parent_id)
    assert STATE_KEY in (row.variables or {})


async def test_cancel_of_a_workflow_waiting_on_an_inquiry_cancels_both(platform: Platform) -> None:
    pack = await seed(platform)
    ref = await define(
        platform, pack, {"ref": "demo.approve", "tasks": [{"name": "ask", "action": "demo.other"}]}
    )
    engine = WorkflowEngine(platform)
    parent_id = await execute(platform, ref)
    await engine.start(parent_id)
    (ask,) = await children(platform, parent_id)
    async with platform.db.transaction() as session:  # the child asked a human: no worker holds it
        inquiry = models.Inquiry(execution=ask.id, prompt="Approve?", status="pending")
        session.add(inquiry)
        await session.flush()
        await session.execute(
            sa.update(models.Execution)
            .where(models.Execution.id == ask.id)
            .values(status="running", worker=None, result={ID_KEY: inquiry.id})
        )
    async with platform.db.transaction() as session:
        parent = await session.get(models.Execution, parent_id)
        assert parent is not None
        await cancel_workflow(session, parent, engine.context())
    assert (await execution(platform, ask.id)).status == "cancelled"
    async with platform.db.session() as session:
        stored = await session.get(models.Inquiry, inquiry.id)
        assert stored is not None and stored.status == "cancelled"
    await engine.child_finished(ask.id)
    assert (await execution(platform, parent_id)).status == "cancelled"
