"""Supporting tables (docs/development.md): keys, artifacts, queue stats and change history."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from attune.db.models._helpers import fk, one_of
from attune.db.models.base import Base, IdMixin, TimestampMixin
from attune.db.types import BigId, Json, TextList, UTCDateTime, enum_column, utcnow
from attune.domain.enums import ArtifactRetention, ArtifactType, OwnerType, values

HISTORY_OPERATIONS = ("INSERT", "UPDATE", "DELETE")


class Key(IdMixin, TimestampMixin, Base):
    """A configuration value or secret, scoped to an owner.

    The owner FKs all CASCADE so deleting an owner never fails on its keys.
    """

    __tablename__ = "key"
    __table_args__ = (sa.UniqueConstraint("owner_type", "owner", "name"),)

    ref: Mapped[str] = mapped_column(sa.Text, nullable=False, unique=True)
    owner_type: Mapped[str] = mapped_column(enum_column("owner_type_enum", values(OwnerType)), nullable=False)
    # Derived: "system", or the owning row's id as text (enforced in the application).
    owner: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    owner_identity: Mapped[int | None] = mapped_column(
        BigId, fk("identity", "CASCADE"), nullable=True, index=True
    )
    owner_pack: Mapped[int | None] = mapped_column(BigId, fk("pack", "CASCADE"), nullable=True, index=True)
    owner_pack_ref: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    owner_action: Mapped[int | None] = mapped_column(
        BigId, fk("action", "CASCADE"), nullable=True, index=True
    )
    owner_action_ref: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    owner_sensor: Mapped[int | None] = mapped_column(
        BigId, fk("sensor", "CASCADE"), nullable=True, index=True
    )
    owner_sensor_ref: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    name: Mapped[str] = mapped_column(sa.Text, nullable=False)
    encrypted: Mapped[bool] = mapped_column(sa.Boolean, nullable=False)
    encryption_key_hash: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    # Plaintext, or Base64(nonce || ciphertext || tag) when encrypted.
    value: Mapped[str] = mapped_column(sa.Text, nullable=False)


class Artifact(IdMixin, TimestampMixin, Base):
    """An output produced by executions (files, progress, URLs); every column is updatable."""

    __tablename__ = "artifact"

    ref: Mapped[str] = mapped_column(sa.Text, nullable=False, index=True)
    scope: Mapped[str] = mapped_column(
        enum_column("owner_type_enum", values(OwnerType)), nullable=False, default=OwnerType.SYSTEM.value
    )
    owner: Mapped[str] = mapped_column(sa.Text, nullable=False, default="")
    type: Mapped[str] = mapped_column(enum_column("artifact_type_enum", values(ArtifactType)), nullable=False)
    retention_policy: Mapped[str] = mapped_column(
        enum_column("artifact_retention_enum", values(ArtifactRetention)),
        nullable=False,
        default=ArtifactRetention.VERSIONS.value,
    )
    retention_limit: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=1)


class QueueStats(Base):
    """Per-action FIFO queue counters, written by upsert (no created/updated)."""

    __tablename__ = "queue_stats"

    action_id: Mapped[int] = mapped_column(
        BigId, fk("action", "CASCADE"), primary_key=True, autoincrement=False
    )
    queue_length: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    active_count: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    max_concurrent: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=1)
    oldest_enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    total_enqueued: Mapped[int] = mapped_column(sa.BigInteger, nullable=False, default=0)
    total_completed: Mapped[int] = mapped_column(sa.BigInteger, nullable=False, default=0)
    last_updated: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class _HistoryColumns(IdMixin):
    """Append-only change records: a surrogate id plus ``time``; no created/updated.

    Indexes are ascending on ``time``; a B-tree serves "newest first" by scanning backwards, and
    ascending keeps the reflected schema identical on both databases.
    """

    time: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    operation: Mapped[str] = mapped_column(sa.Text, nullable=False)
    entity_id: Mapped[int] = mapped_column(BigId, nullable=False)
    entity_ref: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    changed_fields: Mapped[list[str]] = mapped_column(TextList, nullable=False, default=list)
    old_values: Mapped[Any] = mapped_column(Json, nullable=True)
    new_values: Mapped[Any] = mapped_column(Json, nullable=True)


class ExecutionHistory(_HistoryColumns, Base):
    """Change history of ``execution`` rows (entity_ref = action_ref)."""

    __tablename__ = "execution_history"
    __table_args__ = (
        one_of("operation", HISTORY_OPERATIONS),
        sa.Index(None, "entity_id", "time"),
        sa.Index(None, "entity_ref", "time"),
        sa.Index(None, "time"),
    )


class WorkerHistory(_HistoryColumns, Base):
    """Change history of ``worker`` rows (entity_ref = the worker's name after the change)."""

    __tablename__ = "worker_history"
    __table_args__ = (
        one_of("operation", HISTORY_OPERATIONS),
        sa.Index(None, "entity_id", "time"),
        sa.Index(None, "entity_ref", "time"),
        sa.Index(None, "time"),
    )
