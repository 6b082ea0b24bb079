"""Manual runs apply concurrency and rate policies by default (issue #12 item 12); a policy with
``apply_to_manual: false`` exempts them (docs/policies.md)."""

from __future__ import annotations

from pathlib import Path

import httpx

from attune.db import models
from attune.packs.register import register_pack
from attune.platform import Platform

# ``clean_bus`` and ``settings`` are the executor tests' fixtures: short timings, and RabbitMQ queues
# deleted after each test (a message left in a queue would reach the next test's executor).
from tests.integration.test_executor import (  # noqa: F401
    EXECUTE,
    add,
    add_worker,
    clean_bus,
    complete,
    concurrency_policy,
    eventually,
    get,
    queue_stats,
    rate_policy,
    running_executor,
    seed_pack,
    settings,
    settle,
)
from tests.integration.test_pack_policies import policy_rows, write_pack


async def run(api: httpx.AsyncClient, action: models.Action, n: int) -> int:
    response = await api.post(EXECUTE, json={"action_ref": action.ref, "parameters": {"n": n}})
    assert response.status_code == 201, response.text
    return int(response.json()["data"]["id"])


async def status(platform: Platform, execution_id: int) -> str:
    return (await get(platform, models.Execution, execution_id)).status


async def test_a_concurrency_policy_queues_manual_runs(api: httpx.AsyncClient, platform: Platform) -> None:
    _, action, _ = await seed_pack(platform)
    await add(platform, concurrency_policy(action, 1))
    await add_worker(platform, "w-manual", ["shell"])
    async with running_executor(platform):
        first, second = await run(api, action, 1), await run(api, action, 2)
        await settle(platform)
        assert (await status(platform, first), await status(platform, second)) == ("scheduled", "requested")
        await queue_stats(platform, action.id, active_count=1, queue_length=1)

        await complete(platform, first, "completed", {"succeeded": True})
        await settle(platform)

        async def second_scheduled() -> bool:
            return await status(platform, second) == "scheduled"

        await eventually(second_scheduled, timeout=5)


async def test_a_cancel_policy_cancels_a_manual_run_beyond_its_limit(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    _, action, _ = await seed_pack(platform)
    await add(platform, concurrency_policy(action, 1, method="cancel"))
    await add_worker(platform, "w-cancel", ["shell"])
    async with running_executor(platform):
        first = await run(api, action, 1)
        await settle(platform)
        second = await run(api, action, 2)
        await settle(platform)
        assert await status(platform, first) == "scheduled"
        rejected = await get(platform, models.Execution, second)
        assert rejected.status == "cancelled"
        assert "Cancelled by policy: concurrency policy" in rejected.result["error"]


async def test_a_rate_limit_cancels_manual_runs_beyond_it(api: httpx.AsyncClient, platform: Platform) -> None:
    pack, action, _ = await seed_pack(platform)
    await add(platform, rate_policy(pack))
    await add_worker(platform, "w-rate", ["shell"])
    async with running_executor(platform):
        ids = []
        for n in (1, 2, 3):
            ids.append(await run(api, action, n))
            await settle(platform)
        assert [await status(platform, i) for i in ids] == ["scheduled", "scheduled", "cancelled"]
        third = await get(platform, models.Execution, ids[2])
        assert "rate limit policy" in third.result["error"]


async def test_apply_to_manual_false_exempts_manual_runs(api: httpx.AsyncClient, platform: Platform) -> None:
    _, action, _ = await seed_pack(platform)
    await add(platform, concurrency_policy(action, 1, method="cancel", apply_to_manual=False))
    await add_worker(platform, "w-exempt", ["shell"])
    async with running_executor(platform):
        ids = [await run(api, action, n) for n in (1, 2, 3)]
        await settle(platform)

        async def statuses() -> list[str] | None:
            found = [await status(platform, i) for i in ids]
            return found if "requested" not in found else None

        # Waited for: under load the scheduler may commit after the queues drained.
        assert await eventually(statuses) == ["scheduled"] * 3


async def test_a_pack_policy_file_can_exempt_manual_runs(platform: Platform, tmp_path: Path) -> None:
    policies = {"rules_only": "threshold: 1\napply_to_manual: false\n", "everyone": "threshold: 2\n"}
    await register_pack(platform, write_pack(tmp_path, "ops", ("deploy",), policies))
    rows = await policy_rows(platform)
    assert rows["ops.rules_only"].apply_to_manual is False
    assert rows["ops.everyone"].apply_to_manual is True
