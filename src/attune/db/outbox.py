"""Transactional outbox: messages are rows written in the same transaction as the data.

The relay (``attune.bus.relay``) publishes them only after the transaction commits, which removes
both "row saved, message lost" and "message seen before the row exists".
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from attune.db.models import OutboxMessage
from attune.messaging.messages import Envelope, MessageType, make_envelope, routing_for

DIRTY_FLAG = "attune_outbox_dirty"
#: session.info key: the rows staged in this transaction, in order, for the relay's fast path.
STAGED = "attune_outbox_staged"


def note_staged(session: AsyncSession | Session, rows: list[dict[str, Any]]) -> None:
    """Remember rows inserted into ``outbox`` so the relay can publish them right after commit.

    Each row needs ``exchange``, ``routing_key``, ``message_id`` and ``body``.
    """
    session.info.setdefault(STAGED, []).extend(rows)
    session.info[DIRTY_FLAG] = True


def outbox_row(
    message_type: MessageType,
    payload: dict[str, Any],
    *,
    source_service: str,
    routing: tuple[str, str] | None = None,
    correlation_id: str | None = None,
) -> tuple[Envelope, dict[str, Any]]:
    """The envelope of a message and the outbox row that carries it (columns as inserted)."""
    envelope = make_envelope(
        message_type, payload, source_service=source_service, correlation_id=correlation_id
    )
    exchange, routing_key = routing or routing_for(message_type)
    row = {
        "exchange": exchange,
        "routing_key": routing_key,
        "message_type": str(message_type),
        "message_id": envelope.message_id,
        "body": envelope.model_dump(mode="json"),
    }
    return envelope, row


def enqueue(
    session: AsyncSession,
    message_type: MessageType,
    payload: dict[str, Any],
    *,
    source_service: str,
    routing: tuple[str, str] | None = None,
    correlation_id: str | None = None,
) -> Envelope:
    """Stage a message; it leaves for the bus when ``session``'s transaction commits."""
    envelope, row = outbox_row(
        message_type, payload, source_service=source_service, routing=routing, correlation_id=correlation_id
    )
    session.add(OutboxMessage(**row))
    note_staged(session, [row])
    return envelope
