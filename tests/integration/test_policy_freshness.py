"""A policy applies from the commit that writes it (docs/policies.md), not after the executor's
periodic refresh: a burst right after a pack registers a rate limit is throttled."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from attune.db import models
from attune.executor import enforcements
from attune.executor.policies import PolicySet
from attune.platform import Platform
from attune.settings import Settings
from attune.testing.clock import FakeClock
from tests.integration.test_executor import (
    EVENTS,
    add,
    add_rule,
    clean_bus,  # noqa: F401 - autouse fixture
    rows,
    running_executor,
    seed_pack,
    settle,
)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Far longer than the test: only the commit itself can make the policy apply.
    settings.executor.policy_refresh_interval = 3600
    return settings


async def test_a_burst_right_after_a_rate_limit_is_registered_is_throttled(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    pack, action, trigger = await seed_pack(platform)
    await add_rule(platform, pack, action, trigger, "hot")
    async with running_executor(platform):
        await api.post(EVENTS, json={"trigger_ref": trigger.ref, "payload": {"n": 0}})
        await settle(platform)
        assert len(await rows(platform, models.Execution)) == 1  # the executor has read the policies
        await add(
            platform,
            models.Policy(
                ref=f"{pack.ref}.burst",
                name="burst",
                pack=pack.id,
                pack_ref=pack.ref,
                method="cancel",
                threshold=2,
                window_seconds=3600,
                kind="rate_limit",
            ),
        )
        for n in range(1, 6):
            await api.post(EVENTS, json={"trigger_ref": trigger.ref, "payload": {"n": n}})
        await settle(platform)
        statuses = [e.status for e in await rows(platform, models.Enforcement)]
        assert statuses.count("processed") == 2, statuses
        assert statuses.count("disabled") == 4, statuses
        assert len(await rows(platform, models.Execution)) == 2


async def test_the_policy_snapshot_is_read_again_after_the_refresh_interval_on_the_platform_clock(
    platform: Platform, fake_clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads: list[int] = []
    real_load = enforcements.load_policies

    async def counting_load(session: AsyncSession) -> PolicySet:
        loads.append(1)
        return await real_load(session)

    monkeypatch.setattr(enforcements, "load_policies", counting_load)
    processor = enforcements.EnforcementProcessor(platform, policy_refresh_interval=60)
    for _ in range(2):
        async with platform.db.session() as session:
            await processor._current_policies(session)
    assert len(loads) == 1  # the table did not change: the snapshot is reused
    fake_clock.advance(59)
    async with platform.db.session() as session:
        await processor._current_policies(session)
    assert len(loads) == 1
    fake_clock.advance(1)  # the refresh interval has passed on the platform clock
    async with platform.db.session() as session:
        await processor._current_policies(session)
    assert len(loads) == 2
