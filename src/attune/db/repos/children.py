"""Bulk writes of workflow children that the engine runs itself (attune.workflow.engine.inline).

Rows inserted or updated by one statement for many children, so the ORM's change capture
(``attune.db.changes``) does not see them: their history rows, change notifications and bus
messages are written here, the same ones a child created and finished one by one would produce
(docs/performance.md, "In-process workflow tasks"); the notifications travel many to a message
(docs/notifications.md). Envelopes of one type differ only in ids and payload values, so one is
validated through the message model and the rest are copies.
"""

from __future__ import annotations

import uuid
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from attune.db.changes import notifications_for, outbox_insert
from attune.db.history import RowChange, write_history
from attune.db.models import Enforcement, Execution
from attune.db.outbox import note_staged
from attune.db.types import utcnow
from attune.domain.enums import ExecutionStatus
from attune.messaging.messages import MessageType, make_envelope, routing_for

_REQUESTED = ExecutionStatus.REQUESTED.value


def _table() -> sa.Table:
    return cast(sa.Table, Execution.__table__)


async def _insert(session: AsyncSession, rows: list[dict[str, Any]]) -> list[int]:
    """Insert ``rows``; their new ids, in the order of ``rows``."""
    table = _table()
    if session.get_bind().dialect.name != "sqlite":
        # PostgreSQL: SQLAlchemy batches the rows and returns the ids in parameter order.
        result = await session.execute(
            sa.insert(table).returning(table.c.id, sort_by_parameter_order=True), rows
        )
        return [row[0] for row in result.all()]
    # SQLite: asking SQLAlchemy for the parameter order costs one statement per row; a multi-row
    # INSERT costs one per batch. SQLite gives each new row a rowid above every rowid in the table,
    # in the order the rows are inserted (the transaction holds the only write lock), so the ids
    # sorted are the rows' ids in order, whatever order RETURNING lists them in.
    result = await session.execute(sa.insert(table).returning(table.c.id), rows)
    return sorted(row[0] for row in result.all())


async def insert_finished(session: AsyncSession, rows: list[dict[str, Any]], *, source: str) -> list[int]:
    """Insert children that already ran (one statement); their history shows ``requested`` then
    the final status and their change notifications are staged. Returns the new ids in the order
    of ``rows``.

    No ``ExecutionStatusChanged``/``ExecutionCompleted`` is staged: such a child was never
    requested on the bus, holds no concurrency slot, has no retries of its own (``max_retries``
    0) and is counted in the step that ran it, so those messages would change nothing for their
    consumers (the completion listener, the execution manager's log) and only delay what follows
    them in the outbox — the workflow's own completion among others.
    """
    ids = await _insert(session, rows)
    await session.run_sync(_capture, list(zip(ids, rows, strict=True)), source)
    return ids


def _capture(session: Session, written: list[tuple[int, dict[str, Any]]], source: str) -> None:
    """History and notifications of inline children, as if each had been inserted ``requested``
    and then finished (the change capture sees no ORM flush for a bulk insert)."""
    connection = session.connection()
    changes: list[RowChange] = []
    for execution_id, values in written:
        new = {**values, "id": execution_id}
        requested = {**new, "status": _REQUESTED, "result": None, "workflow_task": None}
        changes.append(RowChange("execution", "INSERT", execution_id, None, requested))
        changes.append(RowChange("execution", "UPDATE", execution_id, requested, new))
    write_history(connection, changes)
    messages = _notifications(changes, _refs(connection, written), source)
    connection.execute(outbox_insert(), messages)
    note_staged(session, messages)


def _refs(
    connection: sa.Connection, written: list[tuple[int, dict[str, Any]]]
) -> dict[int, tuple[str | None, str | None]]:
    """Rule and trigger refs of the enforcement the children share with their workflow."""
    ids = {values["enforcement"] for _, values in written if isinstance(values.get("enforcement"), int)}
    if not ids:
        return {}
    query = sa.select(Enforcement.id, Enforcement.rule_ref, Enforcement.trigger_ref).where(
        Enforcement.id.in_(sorted(ids))
    )
    return {row.id: (row.rule_ref, row.trigger_ref) for row in connection.execute(query)}


#: Change notifications per ``ChangeNotifications`` message (≈ 250 bytes each).
NOTIFICATIONS_PER_MESSAGE = 500


def _notifications(
    changes: list[RowChange], refs: dict[int, tuple[str | None, str | None]], source: str
) -> list[dict[str, Any]]:
    """The change notifications of ``changes`` (:func:`attune.db.changes.notifications_for`), in
    order, as ``ChangeNotifications`` messages of up to :data:`NOTIFICATIONS_PER_MESSAGE` each:
    thousands of children would otherwise cost an outbox row, a relay hand-off and a delivery per
    notification. One notification is validated through the message model; the rest are copies."""
    timestamp = utcnow().isoformat()
    notices: list[dict[str, Any]] = []
    for change in changes:
        for notice in notifications_for(change, refs):
            notices.append(
                {
                    "notification_type": notice.channel,
                    "entity_type": notice.entity_type,
                    "entity_id": notice.entity_id,
                    "payload": notice.payload,
                }
            )
    if not notices:
        return []
    template = _Template(
        MessageType.CHANGE_NOTIFICATIONS, {"notifications": [{**notices[0], "timestamp": timestamp}]}, source
    )
    sample = template.body["payload"]["notifications"][0]
    return [
        template.row(
            {"notifications": [{**sample, **notice} for notice in notices[i : i + NOTIFICATIONS_PER_MESSAGE]]}
        )
        for i in range(0, len(notices), NOTIFICATIONS_PER_MESSAGE)
    ]


class _Template:
    """Envelopes of one type that differ only in their ids and payload values: validated once
    through the message model, then copied (thousands of children per step)."""

    def __init__(
        self,
        message_type: MessageType,
        sample: dict[str, Any],
        source: str,
        *,
        routing: tuple[str, str] | None = None,
    ) -> None:
        self.type = message_type
        self.body = make_envelope(message_type, sample, source_service=source).model_dump(mode="json")
        self.exchange, self.routing_key = routing or routing_for(message_type)

    def row(self, payload: dict[str, Any]) -> dict[str, Any]:
        message_id = str(uuid.uuid4())
        body = {
            **self.body,
            "message_id": message_id,
            "correlation_id": message_id,
            "payload": {**self.body["payload"], **payload},
        }
        return {
            "exchange": self.exchange,
            "routing_key": self.routing_key,
            "message_type": str(self.type),
            "message_id": message_id,
            "body": body,
        }
