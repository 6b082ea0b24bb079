"""A policy applies from the commit that writes it (docs/policies.md), not after the executor's
periodic refresh: a burst right after a pack registers a rate limit is throttled."""

from __future__ import annotations

import httpx
import pytest

from attune.db import models
from attune.platform import Platform
from attune.settings import Settings
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
