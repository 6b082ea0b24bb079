"""Hand-off to a local worker (docs/performance.md, "Hand-off to a local worker"; issue #14 item 1).

A dispatch to a worker running in the same process reaches it right after the commit, without the
outbox relay and the bus; its outbox row is still written and only the worker's claim deletes it,
so a crash between the commit and the hand-off re-drives the run exactly once.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from attune.db import models
from attune.db.repos import workers
from attune.db.types import utcnow
from attune.domain.enums import ExecutionStatus
from attune.executor.scheduler import Scheduler
from attune.messaging.messages import dispatch_routing
from attune.platform import Platform
from tests.integration.test_executor import add_worker, rows, running_executor
from tests.integration.test_transitions import counting
from tests.integration.test_worker import (
    add_action,
    dispatch,
    request_cancel,
    running_worker,
    shell_runtime,
    wait_for_pgid,
    wait_status,
)


async def requested(platform: Platform, action: models.Action, **values: object) -> int:
    """A ``requested`` execution of ``action``, as the enforcement processor leaves it."""
    values.setdefault("status", ExecutionStatus.REQUESTED.value)
    async with platform.db.transaction() as session:
        execution = models.Execution(
            action=action.id, action_ref=action.ref, config={}, max_retries=0, **values
        )
        session.add(execution)
        await session.flush()
    return execution.id


async def dispatch_rows(platform: Platform, worker_id: int) -> list[models.OutboxMessage]:
    """The dispatches to ``worker_id`` still in the outbox table."""
    exchange, routing_key = dispatch_routing(worker_id)
    return await rows(
        platform,
        models.OutboxMessage,
        models.OutboxMessage.exchange == exchange,
        models.OutboxMessage.routing_key == routing_key,
    )


async def statuses(platform: Platform, execution_id: int) -> list[str]:
    """The statuses ``execution_id`` went through, in order (its history)."""
    history = await rows(platform, models.ExecutionHistory, models.ExecutionHistory.entity_id == execution_id)
    return [row.new_values["status"] for row in history if (row.new_values or {}).get("status")]


class LostHandOff:
    """A local worker whose process dies right after the commit: it takes nothing."""

    def __init__(self) -> None:
        self.taken: list[int] = []

    def has_free_slot(self) -> bool:
        return True

    def take(self, execution_id: int, message_id: str) -> bool:
        self.taken.append(execution_id)
        return True


@pytest.mark.parametrize("path", ["scheduler", "inline"])
async def test_a_local_worker_runs_its_dispatch_with_the_relay_stopped(platform: Platform, path: str) -> None:
    shell = await shell_runtime(platform)
    action = await add_action(platform, "hello", "echo hello", shell)
    async with running_worker(platform) as worker:
        scheduler = Scheduler(platform)
        platform.relay.pause()  # nothing committed from now on reaches the bus
        execution_id = await requested(platform, action)
        if path == "scheduler":
            await scheduler.schedule(execution_id)
        else:
            async with platform.db.transaction() as session:
                execution = await session.get(models.Execution, execution_id)
                assert execution is not None
                assert await scheduler.dispatch_inline(session, execution)
        done = await wait_status(platform, execution_id)
        assert (done.status, done.worker, done.result["stdout"]) == ("completed", worker.id, "hello\n")
        # The claim deleted the dispatch's row: nothing is left for the relay to send again.
        assert await dispatch_rows(platform, worker.id) == []
        await scheduler.close()


async def test_a_crash_between_the_commit_and_the_hand_off_re_drives_the_run_once(
    platform: Platform, tmp_path: Path
) -> None:
    platform.settings.worker.heartbeat_interval = 0.5
    shell = await shell_runtime(platform)
    ran = tmp_path / "ran"
    action = await add_action(platform, "count", f"echo once >> {ran}", shell)
    async with running_worker(platform, name="handoff-crash") as first:
        worker_id = first.id
        lost = LostHandOff()
        platform.local_handoff[worker_id] = lost
        scheduler = Scheduler(platform)
        execution_id = await requested(platform, action)
        await scheduler.schedule(execution_id)
        await scheduler.close()
        # Committed: scheduled on this worker, its dispatch in the table; the hand-off was lost.
        assert lost.taken == [execution_id]
        row = await wait_status(platform, execution_id, {"scheduled"})
        assert row.worker == worker_id
        [dispatch] = await dispatch_rows(platform, worker_id)
    # The restart: the worker takes back what it owned, the relay sends the rows left over.
    async with running_executor(platform), running_worker(platform, name="handoff-crash") as again:
        assert again.id == worker_id
        await platform.relay.drain_once()
        done = await wait_status(platform, execution_id)
        assert done.status == "completed"
        # The stale dispatch, sent again, claims nothing: it is settled and its row deleted.
        await platform.bus.join(timeout=15)
        await platform.relay.flush()
        assert await dispatch_rows(platform, worker_id) == []
    assert dispatch.message_id
    assert ran.read_text() == "once\n"
    assert (await statuses(platform, execution_id)).count("running") == 1


async def test_the_only_live_worker_is_chosen_without_counting_its_load(platform: Platform) -> None:
    busy = await add_worker(platform, "w-busy", ["shell"], capacity=1)
    action = await add_action(platform, "load", "true", await shell_runtime(platform))
    await requested(platform, action)
    async with platform.db.transaction() as session:
        await session.execute(
            sa.update(models.Execution).values(status=ExecutionStatus.RUNNING.value, worker=busy.id)
        )

    statements_seen: list[str] = []

    async def choose() -> tuple[models.Worker | None, int]:
        with counting(platform) as statements:
            async with platform.db.session() as session:
                chosen = await workers.select_worker(session, "shell", now=utcnow(), heartbeat_interval=5)
        # Not the relay's: it may scan or delete outbox rows meanwhile.
        statements_seen[:] = [text for text in statements if "outbox" not in text]
        return chosen, len(statements_seen)

    chosen, statements = await choose()
    assert chosen is not None and chosen.id == busy.id
    assert statements == 1, statements_seen  # the live workers; one candidate needs no load count
    idle = await add_worker(platform, "w-idle", ["shell"], capacity=1)
    chosen, statements = await choose()
    assert chosen is not None and chosen.id == idle.id  # the least loaded
    assert statements == 2


async def test_a_handed_off_run_cancelled_while_it_waits_for_a_slot_ends_cancelled(
    platform: Platform,
) -> None:
    shell = await shell_runtime(platform)
    long = await add_action(platform, "long", "echo $$; sleep 30", shell)
    async with running_worker(platform, max_concurrent_tasks=1) as worker:
        occupying = await dispatch(platform, long, worker)
        await wait_for_pgid(platform, occupying)
        assert not worker.service.has_free_slot()
        # Handed over between the decision and the commit, when the one slot was taken meanwhile.
        waiting = await requested(platform, long, status="scheduled", worker=worker.id)
        assert worker.service.take(waiting, "no-such-row")
        await request_cancel(platform, waiting, worker.id)
        await request_cancel(platform, occupying, worker.id)
        assert (await wait_status(platform, occupying)).status == "cancelled"
        # It never started, and nothing else would settle it: the worker does.
        assert (await wait_status(platform, waiting)).status == "cancelled"
