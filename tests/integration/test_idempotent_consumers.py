"""Idempotent consumers (docs/operations.md, "Guarantees"): at-least-once delivery never creates a
second enforcement for an (event, rule) or a second execution for an enforcement, on either
database, even when the duplicates race each other."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from attune.db import models
from attune.db.repos import enforcements
from attune.db.repos import executions as execution_repo
from attune.errors import Conflict
from attune.messaging.messages import MessageType
from attune.platform import Platform
from tests.integration.test_executor import (
    EVENTS,
    add_rule,
    add_worker,
    clean_bus,  # noqa: F401 - autouse fixture
    publish,
    rows,
    running_executor,
    seed_pack,
    settings,  # noqa: F401 - short timings
    settle,
)


async def test_a_burst_of_redeliveries_gives_one_enforcement_per_rule_and_one_execution_each(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    pack, action, trigger = await seed_pack(platform)
    first = await add_rule(platform, pack, action, trigger, "first")
    second = await add_rule(platform, pack, action, trigger, "second")
    await add_worker(platform, "w-idem", ["shell"])
    async with running_executor(platform):
        event = (await api.post(EVENTS, json={"trigger_ref": trigger.ref, "payload": {}})).json()["data"]
        again = {"event_id": event["id"], "trigger_ref": trigger.ref, "payload": {}}
        await asyncio.gather(*(publish(platform, MessageType.EVENT_CREATED, again) for _ in range(10)))
        await settle(platform)
        created = await rows(platform, models.Enforcement)
        assert sorted(e.rule for e in created) == sorted([first.id, second.id])
        assert {e.status for e in created} == {"processed"}
        for enforcement in created:
            message = {
                "enforcement_id": enforcement.id,
                "rule_id": enforcement.rule,
                "rule_ref": "x",
                "trigger_ref": trigger.ref,
            }
            await asyncio.gather(
                *(publish(platform, MessageType.ENFORCEMENT_CREATED, message) for _ in range(10))
            )
        await settle(platform)
        executions = await rows(platform, models.Execution)
        assert sorted(x.enforcement for x in executions) == sorted(e.id for e in created)


def _enforcement(event_id: int, rule: models.Rule) -> models.Enforcement:
    return models.Enforcement(
        rule=rule.id, rule_ref=rule.ref, trigger_ref=rule.trigger_ref, event=event_id, payload={}, config={}
    )


async def test_a_second_enforcement_for_the_same_event_and_rule_is_ignored(platform: Platform) -> None:
    pack, action, trigger = await seed_pack(platform)
    rule = await add_rule(platform, pack, action, trigger, "once")
    async with platform.db.transaction() as session:
        assert await enforcements.add_for_event(session, _enforcement(41, rule))
    async with platform.db.transaction() as session:
        assert not await enforcements.add_for_event(session, _enforcement(41, rule))
        # The transaction goes on: another rule, another event still insert.
        assert await enforcements.add_for_event(session, _enforcement(42, rule))
    assert [e.event for e in await rows(platform, models.Enforcement)] == [41, 42]
    with pytest.raises(IntegrityError):
        async with platform.db.transaction() as session:
            session.add(_enforcement(41, rule))


async def test_an_enforcement_requests_its_first_execution_once(platform: Platform) -> None:
    pack, action, trigger = await seed_pack(platform)
    rule = await add_rule(platform, pack, action, trigger, "once")
    async with platform.db.transaction() as session:
        enforcement = _enforcement(7, rule)
        session.add(enforcement)
        await session.flush()
        first = await execution_repo.request_execution(
            session, action, {}, box=None, source_service="test", enforcement=enforcement.id
        )
    async with platform.db.transaction() as session:
        with pytest.raises(Conflict):
            await execution_repo.request_execution(
                session, action, {}, box=None, source_service="test", enforcement=enforcement.id
            )
        # Retries and workflow tasks carry the enforcement on; they are not duplicates.
        await execution_repo.request_execution(
            session,
            action,
            {},
            box=None,
            source_service="test",
            enforcement=enforcement.id,
            retry_count=1,
            original_execution=first.id,
        )
        await execution_repo.request_execution(
            session, action, {}, box=None, source_service="test", enforcement=enforcement.id, parent=first.id
        )
    async with platform.db.session() as session:
        count = await session.scalar(
            sa.select(sa.func.count())
            .select_from(models.Execution)
            .where(models.Execution.enforcement == enforcement.id)
        )
    assert count == 3
