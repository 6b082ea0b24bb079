"""The workflow engine's timers and control (docs/workflows.md): delays and retries fire on the clock;
cancel reaches live children, re-run resumes a failed run from its failed task at either nesting
level. The engine helpers are test_workflow_engine's.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from attune.db import models
from attune.db.repos import workflows as repo
from attune.messaging.topology import EXECUTIONS_EXCHANGE
from attune.platform import Platform
from attune.testing.clock import FakeClock
from attune.workflow.engine import (
    WorkflowEngine,
    WorkflowStateError,
    cancel_workflow,
    rerun_workflow,
)
from tests.integration.test_executor import (
    clean_bus,  # noqa: F401 - fixture
    record,
)
from tests.integration.test_workflow_engine import (
    children,
    define,
    execute,
    execution,
    finish_and_advance,
    seed,
    state_row,
)


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
