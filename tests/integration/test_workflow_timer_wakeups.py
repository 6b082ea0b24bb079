"""The workflow timer loop wakes on need (docs/performance.md "Idle CPU"): it fires a timer this
engine wrote when it is due, reads the running runs only every ``RESCAN_INTERVAL`` (a timer written
elsewhere fires within that delay), and does not query the database several times a second while
no workflow runs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from attune.db.repos import workflows as repo
from attune.platform import Platform
from attune.testing.clock import FakeClock
from attune.workflow.engine import WorkflowEngine
from attune.workflow.engine import service as engine_service
from tests.integration.background import BackgroundLoop, step
from tests.integration.test_workflow_engine import children, define, execute, seed


class Loop(BackgroundLoop):
    """``engine.run_timers`` as a task, counting the reads of the running runs."""

    def __init__(self, engine: WorkflowEngine, monkeypatch: pytest.MonkeyPatch) -> None:
        self.engine = engine
        self.reads = 0
        real = repo.running_states

        async def counted(session: Any) -> Sequence[tuple[int, Any]]:
            self.reads += 1
            return await real(session)

        monkeypatch.setattr(repo, "running_states", counted)
        super().__init__()

    def start(self) -> None:
        self.start_loop(self.engine.run_timers)


@pytest.fixture
async def loop(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Loop]:
    running = Loop(WorkflowEngine(platform), monkeypatch)
    yield running
    await running.close()


async def _run_with_a_timer(platform: Platform, loop: Loop, clock: FakeClock) -> int:
    """Start the timer loop and write a workflow run whose one task waits 1 s; its execution id."""
    pack = await seed(platform)
    ref = await define(
        platform, pack, {"ref": "demo.later", "tasks": [{"name": "t", "action": "demo.other", "delay": 1}]}
    )
    loop.start()
    await clock.sleeping(1)
    return await execute(platform, ref)


async def test_an_idle_loop_reads_the_running_runs_once_per_rescan_interval(
    loop: Loop, fake_clock: FakeClock
) -> None:
    loop.start()
    await fake_clock.sleeping(1)
    assert loop.reads == 1
    for _ in range(9):  # 1.8 s: nine passes of the old 0.2 s loop
        await step(fake_clock, 0.2)
    assert loop.reads == 1
    await step(fake_clock, engine_service.RESCAN_INTERVAL)
    assert loop.reads == 2


async def test_a_timer_this_engine_wrote_fires_when_due_without_a_rescan(
    platform: Platform, loop: Loop, fake_clock: FakeClock
) -> None:
    parent_id = await _run_with_a_timer(platform, loop, fake_clock)
    await loop.engine.start(parent_id)  # writes the run and its timer: the loop is woken
    await step(fake_clock, 0)
    assert await children(platform, parent_id) == []
    await step(fake_clock, 0.9)
    assert await children(platform, parent_id) == []
    await step(fake_clock, 0.1)
    assert len(await children(platform, parent_id)) == 1
    assert loop.reads == 1  # fired from what the engine knew


async def test_a_timer_written_elsewhere_fires_within_the_rescan_interval(
    platform: Platform, loop: Loop, fake_clock: FakeClock
) -> None:
    parent_id = await _run_with_a_timer(platform, loop, fake_clock)
    await WorkflowEngine(platform).start(parent_id)  # another executor writes the timer
    await step(fake_clock, 1.0)
    assert await children(platform, parent_id) == []  # not known here yet
    await step(fake_clock, engine_service.RESCAN_INTERVAL - 1.0)
    assert len(await children(platform, parent_id)) == 1
