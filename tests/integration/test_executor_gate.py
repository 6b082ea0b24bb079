"""The executor's enforcement gate (docs/operations.md): an enforcement whose rule is disabled or whose
parameters fail validation is disabled, and concurrency, cancel and rate-limit policies hold back or
disable runs. The harness is test_executor's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx

from attune.db import models
from attune.platform import Platform
from tests.integration.test_executor import (
    EVENTS,
    EXECUTE,
    add,
    add_rule,
    add_worker,
    clean_bus,  # noqa: F401 - fixture
    complete,
    concurrency_policy,
    eventually,
    get,
    queue_stats,
    rate_policy,
    rows,
    running_executor,
    seed_pack,
    settings,  # noqa: F401 - fixture
    settle,
)


async def test_an_enforcement_whose_rule_was_disabled_is_disabled_and_created_ones_are_recovered(
    platform: Platform,
) -> None:
    pack, action, trigger = await seed_pack(platform)
    live = await add_rule(platform, pack, action, trigger, "live")
    dormant = await add_rule(platform, pack, action, trigger, "dormant", enabled=False)
    # Left 'created' by a previous executor process (its message was consumed, its work lost).
    left = [
        models.Enforcement(
            rule=rule.id, rule_ref=rule.ref, trigger_ref=trigger.ref, payload={}, config={"k": 1}
        )
        for rule in (live, dormant)
    ]
    await add(platform, *left)
    async with running_executor(platform):

        async def decided() -> bool:
            # Recovery runs as the executor starts: poll, the outbox may still be empty meanwhile.
            statuses = [(await get(platform, models.Enforcement, e.id)).status for e in left]
            return statuses == ["processed", "disabled"]

        assert await eventually(decided)
        await settle(platform)
        processed = await get(platform, models.Enforcement, left[0].id)
        disabled = await get(platform, models.Enforcement, left[1].id)
        assert processed.resolved_at is not None and disabled.resolved_at is not None
        executions = await rows(platform, models.Execution)
        assert [(x.enforcement, x.config) for x in executions] == [(processed.id, {"k": 1})]


async def test_parameters_that_fail_validation_disable_the_enforcement(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    schema = {"count": {"type": "integer", "required": True}}
    pack, action, trigger = await seed_pack(platform, param_schema=schema)
    await add_rule(
        platform, pack, action, trigger, "typed", action_params={"count": "{{ event.payload.word }}"}
    )
    async with running_executor(platform):
        await api.post(EVENTS, json={"trigger_ref": trigger.ref, "payload": {"word": "many"}})
        await settle(platform)
        [enforcement] = await rows(platform, models.Enforcement)
        assert enforcement.status == "disabled"
        assert await rows(platform, models.Execution) == []


async def test_a_concurrency_limit_queues_the_next_run_until_the_first_completes(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    pack, action, trigger = await seed_pack(platform)
    await add_rule(platform, pack, action, trigger, "limited", action_params={"n": "{{ event.payload.n }}"})
    await add(platform, concurrency_policy(action, 1, apply_to_manual=False))
    await add_worker(platform, "w-fifo", ["shell"])
    async with running_executor(platform):
        for n in (1, 2, 3):
            await api.post(EVENTS, json={"trigger_ref": trigger.ref, "payload": {"n": n}})
        await settle(platform)
        enforcements = await rows(platform, models.Enforcement)
        assert [e.status for e in enforcements] == ["processed", "created", "created"]
        [first] = await rows(platform, models.Execution)
        # FIFO in enforcement order.
        assert (first.enforcement, first.config) == (enforcements[0].id, enforcements[0].config)
        await queue_stats(platform, action.id, active_count=1, queue_length=2, max_concurrent=1)

        # A manual run under a policy with ``apply_to_manual: false`` is not limited and its
        # completion frees no slot.
        manual = (await api.post(EXECUTE, json={"action_ref": action.ref, "parameters": {"n": 0}})).json()
        await settle(platform)
        await complete(platform, manual["data"]["id"], "completed", {"succeeded": True})
        await settle(platform)
        assert len(await rows(platform, models.Execution, models.Execution.enforcement.is_not(None))) == 1

        def run_of(enforcement: models.Enforcement) -> Callable[[], Awaitable[list[models.Execution]]]:
            return lambda: rows(platform, models.Execution, models.Execution.enforcement == enforcement.id)

        await complete(platform, first.id, "completed", {"succeeded": True})
        await settle(platform)
        [second] = await eventually(run_of(enforcements[1]), timeout=5)
        assert second.config == enforcements[1].config
        assert (await get(platform, models.Enforcement, enforcements[2].id)).status == "created"

        await complete(platform, second.id, "failed", {"succeeded": False, "error": "boom"})
        await settle(platform)
        await eventually(run_of(enforcements[2]), timeout=5)
        assert [e.status for e in await rows(platform, models.Enforcement)] == ["processed"] * 3
        await queue_stats(platform, action.id, active_count=1, queue_length=0, total_completed=2)


async def test_a_cancel_policy_at_its_limit_disables_the_enforcement(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    pack, action, trigger = await seed_pack(platform)
    await add_rule(platform, pack, action, trigger, "limited")
    await add(platform, concurrency_policy(action, 1, method="cancel"))
    async with running_executor(platform):
        for n in (1, 2):
            await api.post(EVENTS, json={"trigger_ref": trigger.ref, "payload": {"n": n}})
            await settle(platform)
        assert [e.status for e in await rows(platform, models.Enforcement)] == ["processed", "disabled"]
        assert len(await rows(platform, models.Execution)) == 1


async def test_a_rate_limit_disables_enforcements_beyond_it(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    pack, action, trigger = await seed_pack(platform)
    await add_rule(platform, pack, action, trigger, "limited")
    await add(platform, rate_policy(pack))
    async with running_executor(platform):
        for n in (1, 2, 3):
            await api.post(EVENTS, json={"trigger_ref": trigger.ref, "payload": {"n": n}})
            await settle(platform)
        assert [e.status for e in await rows(platform, models.Enforcement)] == [
            "processed",
            "processed",
            "disabled",
        ]
        assert len(await rows(platform, models.Execution)) == 2
