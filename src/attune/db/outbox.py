"""Transactional outbox: messages are rows written in the same transaction as the data.

The relay (``attune.bus.relay``) publishes them only after the transaction commits, which removes
both "row saved, message lost" and "message seen before the row exists".
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from attune.bus.messages import Envelope, MessageType, make_envelope, routing_for
from attune.db.models import OutboxMessage

DIRTY_FLAG = "attune_outbox_dirty"


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
    envelope = make_envelope(
        message_type, payload, source_service=source_service, correlation_id=correlation_id
    )
    exchange, routing_key = routing or routing_for(message_type)
    session.add(
        OutboxMessage(
            exchange=exchange,
            routing_key=routing_key,
            message_type=str(message_type),
            body=envelope.model_dump(mode="json"),
        )
    )
    session.info[DIRTY_FLAG] = True
    return envelope
