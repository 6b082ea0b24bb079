"""The transactional outbox table: bus messages staged in the same transaction as the data."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from attune.db.models.base import Base, IdMixin
from attune.db.types import Json, UTCDateTime, utcnow


class OutboxMessage(IdMixin, Base):
    """One message waiting to be published; the relay deletes it after the broker confirms."""

    __tablename__ = "outbox"
    # The relay polls "available now, oldest first".
    __table_args__ = (sa.Index(None, "available_at", "id"),)

    exchange: Mapped[str] = mapped_column(sa.Text, nullable=False)
    routing_key: Mapped[str] = mapped_column(sa.Text, nullable=False)
    message_type: Mapped[str] = mapped_column(sa.Text, nullable=False)
    # The envelope's message_id: the relay deletes by it after publishing straight from memory.
    message_id: Mapped[str] = mapped_column(sa.String(36), nullable=False, index=True)
    # The full envelope dict.
    body: Mapped[dict[str, Any]] = mapped_column(Json, nullable=False)
    created: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    # Pushed into the future to back off after a failed publish.
    available_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
