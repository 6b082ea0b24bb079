"""The executor's liveness, retry and timeout monitors (docs/operations.md): a stale worker's executions
are abandoned or requested again, retriable failures retried after their back-off, and executions
left scheduled or dispatched too long fail. The harness is test_executor's.
"""

from __future__ import annotations

from datetime import timedelta

import httpx
import sqlalchemy as sa

from attune.db import models
from attune.db.repos import executions as execution_repo
from attune.db.types import utcnow
from attune.messaging.messages import MessageType, make_envelope
from attune.platform import Platform
from attune.testing.clock import FakeClock
from tests.integration.test_executor import (
    EXECUTE,
    add,
    add_worker,
    clean_bus,  # noqa: F401 - fixture
    complete,
    eventually,
    executor_loops,
    get,
    heartbeating,
    pass_time,
    publish,
    record_completions,
    rows,
    running_executor,
    seed_pack,
    settings,  # noqa: F401 - fixture
    settle,
)


async def test_a_stale_workers_executions_are_abandoned_within_two_heartbeats(
    platform: Platform, fake_clock: FakeClock
) -> None:
    platform.settings.worker.heartbeat_interval = 0.5
    _, action, _ = await seed_pack(platform)
    silent = await add_worker(platform, "w-silent", ["shell"])
    alive = await add_worker(platform, "w-alive", ["shell"])
    lost = models.Execution(
        action=action.id, action_ref=action.ref, status="running", worker=silent.id, max_retries=0
    )
    waiting = models.Execution(action=action.id, action_ref=action.ref, status="scheduled", worker=silent.id)
    safe = models.Execution(action=action.id, action_ref=action.ref, status="running", worker=alive.id)
    await add(platform, lost, waiting, safe)
    async with platform.db.transaction() as session:  # both last beat when the clock starts
        await session.execute(sa.update(models.Worker).values(last_heartbeat=fake_clock.now()))
    completions = await record_completions(platform)
    async with heartbeating(platform, alive), running_executor(platform):
        await fake_clock.sleeping(executor_loops(platform) + 1)
        silent_for = 0.0
        while (execution := await get(platform, models.Execution, lost.id)).status != "abandoned":
            assert silent_for < 2 * 0.5, "the silent worker's execution was not abandoned in time"
            await pass_time(platform, fake_clock, 0.125, others=1)  # a liveness sweep each time
            silent_for += 0.125
        # Not before 1.5 silent intervals (the monitor started with the clock, so it could see
        # them all), and within two.
        assert 1.5 * 0.5 < silent_for <= 2 * 0.5
        assert execution.result == {
            "succeeded": False,
            "error": "Worker 'w-silent' stopped heartbeating",
            "worker": silent.id,
        }

        async def rescheduled() -> models.Execution | None:
            row = await get(platform, models.Execution, waiting.id)
            return row if (row.status, row.worker) == ("scheduled", alive.id) else None

        # It never started: it goes to a live worker instead of being abandoned.
        assert await eventually(rescheduled, timeout=3)
        assert (await get(platform, models.Worker, silent.id)).status == "inactive"
        for _ in range(4):  # another heartbeat interval: the beating worker keeps its work
            await pass_time(platform, fake_clock, 0.125, others=1)
        assert (await get(platform, models.Execution, safe.id)).status == "running"
        assert (await get(platform, models.Worker, alive.id)).status == "active"
        await settle(platform)
        assert sorted((p["execution_id"], p["status"]) for p in completions.payloads()) == [
            (lost.id, "abandoned"),
        ]
        assert len(await rows(platform, models.Execution)) == 3  # no retries without a budget


async def test_a_worker_of_this_process_is_alive_whatever_its_heartbeat(
    api: httpx.AsyncClient, platform: Platform, fake_clock: FakeClock
) -> None:
    """The embedded server: a late heartbeat write of its own worker abandons nothing."""
    platform.settings.worker.heartbeat_interval = 0.5
    _, action, _ = await seed_pack(platform)
    local = await add_worker(platform, "w-local", ["shell"])  # never heartbeats in this test
    platform.local_workers.add(local.id)
    busy = models.Execution(action=action.id, action_ref=action.ref, status="running", worker=local.id)
    await add(platform, busy)
    async with running_executor(platform):
        await fake_clock.sleeping(executor_loops(platform))
        for _ in range(3):  # three heartbeat intervals of silence, a liveness sweep after each
            await pass_time(platform, fake_clock, 0.5)
        await settle(platform)
        assert (await get(platform, models.Execution, busy.id)).status == "running"
        assert (await get(platform, models.Worker, local.id)).status == "active"
        response = await api.post(EXECUTE, json={"action_ref": action.ref})
        await settle(platform)
        execution = await get(platform, models.Execution, response.json()["data"]["id"])
        assert (execution.status, execution.worker) == ("scheduled", local.id)


async def test_a_stale_workers_execution_with_retries_left_is_requested_again(platform: Platform) -> None:
    platform.settings.worker.heartbeat_interval = 0.5
    schema = {"token": {"type": "string", "secret": True}, "n": {"type": "integer"}}
    _, action, _ = await seed_pack(platform, param_schema=schema, max_retries=2)
    silent = await add_worker(platform, "w-gone", ["shell"])
    async with platform.db.transaction() as session:
        row = await session.get(models.Action, action.id)
        assert row is not None
        original = await execution_repo.request_execution(
            session,
            row,
            {"token": "s3cr3t", "n": 4},
            box=platform.secrets,
            source_service="test",
            enforcement=77,
        )
        original.status, original.worker = "running", silent.id
    async with running_executor(platform):

        async def retried() -> list[models.Execution]:
            return await rows(platform, models.Execution, models.Execution.original_execution == original.id)

        [retry] = await eventually(retried, timeout=3)
        assert (await get(platform, models.Execution, original.id)).status == "abandoned"
        assert (retry.retry_count, retry.retry_reason, retry.enforcement) == (1, "worker_heartbeat_stale", 77)
        assert retry.config == {"token": "********", "n": 4}
        assert execution_repo.full_parameters(retry, platform.secrets) == {"token": "s3cr3t", "n": 4}


async def test_a_retriable_failure_is_retried_after_the_backoff_once(
    api: httpx.AsyncClient, platform: Platform, fake_clock: FakeClock
) -> None:
    _, action, _ = await seed_pack(platform, max_retries=1)
    await add_worker(platform, "w-retry", ["shell"])
    async with running_executor(platform):
        first = (await api.post(EXECUTE, json={"action_ref": action.ref, "parameters": {"n": 1}})).json()[
            "data"
        ]
        await settle(platform)
        await complete(
            platform, first["id"], "failed", {"succeeded": False, "error": "Connection reset by peer"}
        )
        await settle(platform)
        # Redelivery of the completion must not create a second retry.
        await publish(
            platform,
            MessageType.EXECUTION_COMPLETED,
            {
                "execution_id": first["id"],
                "action_id": action.id,
                "action_ref": action.ref,
                "status": "failed",
                "completed_at": utcnow().isoformat(),
            },
        )

        async def retried() -> list[models.Execution]:
            return await rows(platform, models.Execution, models.Execution.original_execution == first["id"])

        await settle(platform)
        await fake_clock.sleeping(executor_loops(platform) + 1)  # the retry waits for its backoff
        await pass_time(platform, fake_clock, 0.7, others=1)
        assert await retried() == []  # not before the backoff (1 s ± 20 %)
        fake_clock.advance(0.6)
        [retry] = await eventually(retried, timeout=5)
        assert (retry.retry_count, retry.retry_reason, retry.config) == (1, "transient_error", {"n": 1})
        await settle(platform)
        await complete(
            platform, retry.id, "failed", {"succeeded": False, "error": "Connection reset by peer"}
        )
        await settle(platform)
        await fake_clock.sleeping(executor_loops(platform))
        assert fake_clock.pending == executor_loops(platform)  # no retry waits for its backoff
        await pass_time(platform, fake_clock, 1.5)  # longer than the first backoff
        await settle(platform)
        assert len(await retried()) == 1  # the budget (max_retries=1) is spent


async def test_a_failure_the_retry_policy_does_not_cover_is_not_retried(
    api: httpx.AsyncClient, platform: Platform, fake_clock: FakeClock
) -> None:
    _, action, _ = await seed_pack(platform, max_retries=3)
    async with platform.db.transaction() as session:
        row = await session.get(models.Action, action.id)
        assert row is not None
        row.retry_on = ["timeout"]  # retry: {count: 3, on: [timeout]}
    await add_worker(platform, "w-final", ["shell"])
    async with running_executor(platform):
        first = (await api.post(EXECUTE, json={"action_ref": action.ref})).json()["data"]
        await settle(platform)
        await complete(platform, first["id"], "failed", {"succeeded": False, "error": "exit code 3"})
        await settle(platform)
        await pass_time(platform, fake_clock, 1.5)  # longer than any first backoff
        await settle(platform)
        assert len(await rows(platform, models.Execution)) == 1


async def test_executions_left_scheduled_too_long_fail(platform: Platform) -> None:
    platform.settings.executor.scheduled_timeout = 30
    _, action, _ = await seed_pack(platform)
    worker = await add_worker(platform, "w-slow", ["shell"])
    old = models.Execution(
        action=action.id,
        action_ref=action.ref,
        status="scheduled",
        worker=worker.id,
        updated=utcnow() - timedelta(minutes=2),
    )
    fresh = models.Execution(action=action.id, action_ref=action.ref, status="scheduled", worker=worker.id)
    await add(platform, old, fresh)
    completions = await record_completions(platform)
    async with heartbeating(platform, worker), running_executor(platform):

        async def failed() -> models.Execution | None:
            row = await get(platform, models.Execution, old.id)
            return row if row.status == "failed" else None

        execution = await eventually(failed, timeout=5)
        assert execution.result["failed_by"] == "execution_timeout_monitor"
        assert execution.result["timeout_seconds"] == 30
        assert execution.result["age_seconds"] >= 119
        assert execution.result["error"].startswith(
            "Execution timeout: worker did not pick up task within 30 seconds"
        )
        assert (await get(platform, models.Execution, fresh.id)).status == "scheduled"
        await settle(platform)
        [completion] = completions.payloads()
        assert (completion["execution_id"], completion["action_id"], completion["status"]) == (
            old.id,
            action.id,
            "failed",
        )


async def test_an_expired_dispatch_fails_its_execution(platform: Platform) -> None:
    _, action, _ = await seed_pack(platform)
    worker = await add_worker(platform, "w-deaf", ["shell"])
    expired = models.Execution(action=action.id, action_ref=action.ref, status="scheduled", worker=worker.id)
    other = await add_worker(platform, "w-other", ["shell"])
    moved = models.Execution(action=action.id, action_ref=action.ref, status="scheduled", worker=other.id)
    await add(platform, expired, moved)
    completions = await record_completions(platform)
    async with heartbeating(platform, worker, other), running_executor(platform):
        for execution in (expired, moved):
            envelope = make_envelope(
                MessageType.EXECUTION_REQUESTED,
                {"execution_id": execution.id, "worker_id": worker.id, "action_ref": action.ref},
                source_service="executor",
            )
            await platform.bus.publish("attune.dlx", f"execution.dispatch.worker.{worker.id}", envelope)
        await publish(platform, MessageType.EVENT_CREATED, {"event_id": 999, "trigger_ref": "x.y"})  # dropped
        await settle(platform)

        async def ended() -> models.Execution | None:
            row = await get(platform, models.Execution, expired.id)
            return row if row.status != "scheduled" else None

        # Waited for: under load the dead-letter consumer may commit after the queues drained.
        failed = await eventually(ended)
        assert failed.status == "failed"
        assert failed.result["error"] == "Worker queue TTL expired"
        assert str(worker.id) in failed.result["message"]
        assert (await get(platform, models.Execution, moved.id)).status == "scheduled"

        async def completed() -> list[tuple[int, str]]:
            return [(p["execution_id"], p["status"]) for p in completions.payloads()]

        # The completion travels through the broker after the commit: wait for it, then once more
        # for anything that should not be there.
        await eventually(completed)
        await settle(platform)
        assert await completed() == [(expired.id, "failed")]
