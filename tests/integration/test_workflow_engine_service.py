"""Workflows under the whole executor service (docs/workflows.md): the wiring of the scheduler hand-off,
the completion listener and the timer loop, and a workflow waiting on an inquiry. The engine helpers are
test_workflow_engine's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import sqlalchemy as sa

from attune.db import models
from attune.operations.inquiry_requests import ID_KEY
from attune.platform import Platform
from attune.workflow.engine import (
    STATE_KEY,
    WorkflowEngine,
    cancel_workflow,
)
from tests.integration.test_executor import (
    clean_bus,  # noqa: F401 - fixture
    running_executor,
)
from tests.integration.test_workflow_engine import (
    children,
    define,
    execute,
    execution,
    finish,
    seed,
    state_row,
)

T = TypeVar("T")


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
