"""Back-pressure on webhook intake (docs/webhooks.md, "Back-pressure"): while the pipeline's
backlog is at ``server.max_backlog``, the receiver holds new calls until it comes down, and
answers 429 with ``Retry-After`` — recording nothing — if it does not."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from attune.api import intake
from attune.db import models
from attune.db.repos import executions as execution_repo
from attune.messaging.messages import Envelope
from attune.messaging.topology import EXECUTOR_EVENTS_QUEUE
from attune.packs.register import register_system_packs
from attune.platform import Platform
from attune.testing.clock import FakeClock
from tests.integration.test_webhooks import enable, trigger_id  # noqa: F401 - the fixture

LIMIT = 3


async def _events(platform: Platform) -> int:
    async with platform.db.session() as session:
        return (await session.execute(sa.select(sa.func.count()).select_from(models.Event))).scalar_one()


async def _stalled(api: httpx.AsyncClient, platform: Platform, limit: int) -> str:
    """The executor's queue exists, empty, and nobody takes from it; the receiver's URL."""
    platform.settings.server.max_backlog = limit
    await platform.bus.declare_queue(EXECUTOR_EVENTS_QUEUE)
    await _take_all(platform)  # the broker's queue may outlive an earlier test's platform
    return f"/api/v1/webhooks/{await enable(api)}"


async def _until_held(app: Any, platform: Platform, count: int) -> intake.EventBacklog:
    for _ in range(500):
        backlog = intake.backlog_for(app.state, platform)
        if backlog.held == count:
            return backlog
        await asyncio.sleep(0.01)
    raise AssertionError(f"not {count} held")


async def _take_all(platform: Platform, expected: int | None = None) -> None:
    """The pipeline catches up: everything in the executor's queue is taken (``expected`` of
    them, when given)."""
    taken: list[Envelope] = []

    async def take(envelope: Envelope) -> None:
        taken.append(envelope)

    await platform.relay.flush()
    consumer = await platform.bus.consume(EXECUTOR_EVENTS_QUEUE.name, take)
    try:
        for _ in range(500):
            if expected is None or len(taken) >= expected:
                break
            await asyncio.sleep(0.01)
        await platform.bus.join(timeout=10)
    finally:
        await consumer.cancel()
    assert expected is None or len(taken) == expected


async def _hold_one(
    api: httpx.AsyncClient, client: httpx.AsyncClient, app: Any, platform: Platform
) -> asyncio.Task[httpx.Response]:
    """Fill the backlog of a stalled pipeline, then send one more call: it is held (running)."""
    url = await _stalled(api, platform, LIMIT)
    for n in range(LIMIT):
        assert (await client.post(url, json={"payload": n})).status_code == 200
    held = asyncio.create_task(client.post(url, json={"payload": "held"}))
    await _until_held(app, platform, 1)
    assert not held.done() and await _events(platform) == LIMIT  # nothing recorded while held
    return held


@pytest.mark.usefixtures("trigger_id")
async def test_a_call_past_the_backlog_is_held_until_the_pipeline_catches_up(
    api: httpx.AsyncClient, client: httpx.AsyncClient, app: Any, platform: Platform, fake_clock: FakeClock
) -> None:
    held = await _hold_one(api, client, app, platform)
    await _take_all(platform, LIMIT)
    fake_clock.advance(intake.READ_INTERVAL)
    answer = await asyncio.wait_for(held, 10)
    assert answer.status_code == 200, answer.text
    assert await _events(platform) == LIMIT + 1


@pytest.mark.usefixtures("trigger_id")
async def test_a_held_call_is_refused_with_retry_after_if_the_pipeline_stays_behind(
    api: httpx.AsyncClient, client: httpx.AsyncClient, app: Any, platform: Platform, fake_clock: FakeClock
) -> None:
    held = await _hold_one(api, client, app, platform)
    await platform.relay.flush()
    # Past HOLD_SECONDS on the fake clock (a step the held call misses is made up by the next).
    for _ in range(20 * int(intake.HOLD_SECONDS / intake.READ_INTERVAL)):
        if held.done():
            break
        fake_clock.advance(intake.READ_INTERVAL)
        await asyncio.sleep(0.01)
    refused = await asyncio.wait_for(held, 10)
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == str(intake.RETRY_AFTER)
    assert refused.json()["code"] == "TOO_MANY_REQUESTS"
    assert "pipeline is behind" in refused.json()["error"]
    assert await _events(platform) == LIMIT  # the refused call recorded nothing


@pytest.mark.usefixtures("trigger_id")
async def test_calls_past_the_held_limit_are_refused_at_once(
    api: httpx.AsyncClient,
    client: httpx.AsyncClient,
    platform: Platform,
    fake_clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(intake, "MAX_HELD", 0)
    url = await _stalled(api, platform, LIMIT)
    for n in range(LIMIT):
        assert (await client.post(url, json={"payload": n})).status_code == 200
    refused = await client.post(url, json={"payload": "refused"})
    assert refused.status_code == 429 and refused.headers["Retry-After"] == str(intake.RETRY_AFTER)
    assert await _events(platform) == LIMIT


@pytest.mark.usefixtures("trigger_id")
async def test_runs_waiting_for_a_worker_count_in_the_backlog(
    api: httpx.AsyncClient,
    client: httpx.AsyncClient,
    platform: Platform,
    fake_clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(intake, "MAX_HELD", 0)
    await register_system_packs(platform)
    async with platform.db.transaction() as session:
        action = await session.scalar(sa.select(models.Action).where(models.Action.ref == "core.noop"))
        assert action is not None
        for _ in range(LIMIT):
            await execution_repo.request_execution(
                session, action, {}, box=None, source_service="t", stage=False
            )
    url = await _stalled(api, platform, LIMIT)
    refused = await client.post(url, json={"payload": "behind"})
    assert refused.status_code == 429, refused.text
    assert await _events(platform) == 0


@pytest.mark.usefixtures("trigger_id")
async def test_no_bound_when_the_backlog_limit_is_zero(
    api: httpx.AsyncClient, client: httpx.AsyncClient, platform: Platform, fake_clock: FakeClock
) -> None:
    url = await _stalled(api, platform, 0)
    for n in range(LIMIT + 2):
        assert (await client.post(url, json={"payload": n})).status_code == 200
    assert await _events(platform) == LIMIT + 2
