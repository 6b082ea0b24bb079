"""Execution transitions as single statements (docs/performance.md): claim, finish and dispatch
record the same history rows and change notifications as the same change written through the ORM,
and stage their own messages with them, in a fixed number of statements.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from attune.db import models
from attune.domain.enums import ExecutionStatus
from attune.messaging.messages import MessageType
from attune.operations import executions as execution_operations
from attune.operations import worker as worker_operations
from attune.platform import Platform
from tests.integration.test_changes import add

pytestmark = pytest.mark.usefixtures("held_outbox")

T = TypeVar("T")

CHANGE = str(MessageType.CHANGE_NOTIFICATION)
RESULT = {"succeeded": True, "stdout": "x" * 300, "data": {"n": [1, 2.5, None]}}
# Fields of a notification or history row that differ between two executions by nature.
_VOLATILE = {"id", "entity_id", "created", "updated", "execution_id", "changed_at", "completed_at"}


async def new_execution(platform: Platform, enforcement: int | None, **values: Any) -> models.Execution:
    fields = {"action_ref": "core.echo", "action": 7, "executor": 1, "config": {"message": "hi"}}
    return await add(platform, models.Execution(**{**fields, "enforcement": enforcement, **values}))


async def orm_update(platform: Platform, execution_id: int, **values: Any) -> None:
    """The same change written as an ORM-enabled UPDATE, captured by the session listeners."""
    async with platform.db.transaction() as session:
        await session.execute(
            sa.update(models.Execution).where(models.Execution.id == execution_id).values(**values)
        )


def _same_enforcement(values: Any, enforcement: int) -> Any:
    if isinstance(values, dict) and values.get("enforcement") == enforcement:
        return {**values, "enforcement": "E"}
    return values


async def in_order(session: AsyncSession, model: type[T], *where: Any) -> Sequence[T]:
    """The rows of ``model`` matching ``where``, in the order they were written."""
    query = sa.select(model).where(*where).order_by(model.id)  # type: ignore[attr-defined]
    return (await session.scalars(query)).all()


async def captured(platform: Platform, execution_id: int, enforcement: int) -> tuple[list[Any], list[Any]]:
    """(history rows, notification payloads) of one execution, without what differs by nature
    (its enforcement id reads ``E``)."""
    async with platform.db.session() as session:
        history = await in_order(
            session, models.ExecutionHistory, models.ExecutionHistory.entity_id == execution_id
        )
        outbox = await in_order(session, models.OutboxMessage, models.OutboxMessage.message_type == CHANGE)
    rows = [
        (
            h.operation,
            h.entity_ref,
            h.changed_fields,
            h.old_values,
            _same_enforcement(h.new_values, enforcement),
        )
        for h in history
    ]
    notices = [
        (
            m.routing_key,
            _same_enforcement(
                {k: v for k, v in m.body["payload"]["payload"].items() if k not in _VOLATILE}, enforcement
            ),
        )
        for m in outbox
        if m.body["payload"]["entity_id"] == execution_id
    ]
    return rows, notices


async def messages_of(platform: Platform, execution_id: int) -> list[tuple[str, dict[str, Any]]]:
    """The pipeline messages (not notifications) staged for one execution, in order."""
    async with platform.db.session() as session:
        outbox = await in_order(session, models.OutboxMessage, models.OutboxMessage.message_type != CHANGE)
    return [
        (m.message_type, m.body["payload"])
        for m in outbox
        if m.body["payload"].get("execution_id") == execution_id
    ]


async def same_capture(
    platform: Platform,
    transitions: Callable[[models.Execution], Awaitable[None]],
    orm: Callable[[models.Execution], Awaitable[None]],
    **initial: Any,
) -> tuple[list[Any], list[Any]]:
    enforcements = [
        await add(platform, models.Enforcement(rule_ref="p.on_hook", trigger_ref="core.webhook", event=None))
        for _ in range(2)
    ]
    first = await new_execution(platform, enforcements[0].id, **initial)
    second = await new_execution(platform, enforcements[1].id, **initial)
    await transitions(first)
    await orm(second)
    mine = await captured(platform, first.id, enforcements[0].id)
    theirs = await captured(platform, second.id, enforcements[1].id)
    assert mine == theirs
    return mine


async def test_dispatch_claim_and_finish_capture_what_the_orm_would(platform: Platform) -> None:
    worker = await add(
        platform, models.Worker(name="w1", worker_type="local", worker_role="action", host="h")
    )

    async def by_transitions(execution: models.Execution) -> None:
        async with platform.db.transaction() as session:
            assert await execution_operations.dispatch(session, execution, worker)
        async with platform.db.transaction() as session:
            claimed = await worker_operations.claim(session, execution.id, worker.id, source_service="worker")
        assert claimed is not None and claimed.config == {"message": "hi"}
        async with platform.db.transaction() as session:
            written = await worker_operations.record_outcome(
                session, claimed, "completed", RESULT, action_id=7, source_service="worker"
            )
        assert written == "completed"

    async def by_orm(execution: models.Execution) -> None:
        await orm_update(platform, execution.id, status="scheduled", worker=worker.id)
        await orm_update(platform, execution.id, status="running")
        await orm_update(platform, execution.id, status="completed", result=RESULT)

    history, notices = await same_capture(platform, by_transitions, by_orm)

    assert [(row[3], row[4]) for row in history[1:3]] == [
        ({"status": "requested"}, {"status": "scheduled"}),
        ({"status": "scheduled"}, {"status": "running"}),
    ]
    assert history[3][2] == ["status", "result"]
    changed = [n for channel, n in notices if channel == "execution_status_changed"]
    assert [(n["old_status"], n["status"], n["rule_ref"], n["trigger_ref"]) for n in changed] == [
        ("requested", "scheduled", "p.on_hook", "core.webhook"),
        ("scheduled", "running", "p.on_hook", "core.webhook"),
        ("running", "completed", "p.on_hook", "core.webhook"),
    ]


async def test_the_pipeline_messages_are_staged_with_the_transitions(platform: Platform) -> None:
    worker = await add(
        platform, models.Worker(name="w1", worker_type="local", worker_role="action", host="h")
    )
    execution = await new_execution(platform, None)
    async with platform.db.transaction() as session:
        assert await execution_operations.dispatch(session, execution, worker)
    async with platform.db.transaction() as session:
        claimed = await worker_operations.claim(session, execution.id, worker.id, source_service="worker")
        assert claimed is not None
        assert (
            await worker_operations.claim(session, execution.id, worker.id, source_service="worker") is None
        )
    async with platform.db.transaction() as session:
        await worker_operations.record_outcome(
            session, claimed, "failed", {"succeeded": False}, action_id=7, source_service="worker"
        )

    staged = await messages_of(platform, execution.id)
    changed = str(MessageType.EXECUTION_STATUS_CHANGED)
    assert [
        (kind, p.get("previous_status"), p.get("new_status") or p.get("status")) for kind, p in staged
    ] == [
        (changed, "requested", "scheduled"),
        (str(MessageType.EXECUTION_REQUESTED), None, None),
        (changed, "scheduled", "running"),
        (changed, "running", "failed"),
        (str(MessageType.EXECUTION_COMPLETED), None, "failed"),
    ]
    assert staged[1][1]["worker_id"] == worker.id and staged[1][1]["config"] == {"message": "hi"}
    assert staged[-1][1]["result"] == {"succeeded": False} and staged[-1][1]["action_id"] == 7


async def test_finishing_a_run_that_has_a_result_or_is_canceling_records_the_real_old_values(
    platform: Platform,
) -> None:
    partial = {"partial": True}

    async def by_transitions(execution: models.Execution) -> None:
        async with platform.db.transaction() as session:
            await worker_operations.record_outcome(
                session, execution, "cancelled", RESULT, action_id=7, source_service="worker"
            )

    async def by_orm(execution: models.Execution) -> None:
        await orm_update(platform, execution.id, status="cancelled", result=RESULT)

    history, _ = await same_capture(
        platform, by_transitions, by_orm, status=ExecutionStatus.CANCELING.value, result=partial
    )
    assert history[-1][3]["status"] == "canceling"
    assert history[-1][3]["result"]["size"] == len('{"partial":true}')


async def test_a_transition_from_several_statuses_reads_the_old_ones_once(platform: Platform) -> None:
    async def by_transitions(execution: models.Execution) -> None:
        async with platform.db.transaction() as session:
            assert await execution_operations.finish_execution(
                session,
                execution,
                ExecutionStatus.FAILED,
                {"error": "gone"},
                from_statuses=("requested", "scheduled", "running"),
            )

    async def by_orm(execution: models.Execution) -> None:
        await orm_update(platform, execution.id, status="failed", result={"error": "gone"})

    history, _ = await same_capture(platform, by_transitions, by_orm, status="scheduled")
    assert history[-1][3] == {"status": "scheduled", "result": None}


@contextmanager
def counting(platform: Platform) -> Iterator[list[str]]:
    statements: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.split(None, 1)[0].upper() in ("SELECT", "INSERT", "UPDATE", "DELETE"):
            statements.append(statement)

    engine = platform.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", before)


async def test_claim_and_finish_are_three_statements_each(platform: Platform) -> None:
    execution = await new_execution(platform, None, status="scheduled", worker=3)

    with counting(platform) as claiming:
        async with platform.db.transaction() as session:
            claimed = await worker_operations.claim(session, execution.id, 3, source_service="worker")
    assert claimed is not None
    with counting(platform) as finishing:
        async with platform.db.transaction() as session:
            await worker_operations.record_outcome(
                session, claimed, "completed", RESULT, action_id=7, source_service="worker"
            )

    # The UPDATE … RETURNING, its history row, and one outbox INSERT for everything staged.
    for statements in (claiming, finishing):
        assert [s.split(None, 2)[:2] for s in statements] == [
            ["UPDATE", "execution"],
            ["INSERT", "INTO"],
            ["INSERT", "INTO"],
        ], statements
