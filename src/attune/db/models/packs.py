"""Packs and runtimes (docs/development.md): the installed bundles and their execution environments."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from attune.db.models._helpers import fk, one_of
from attune.db.models.base import Base, CreatedMixin, IdMixin, TimestampMixin
from attune.db.types import BigId, Json, TextList, UTCDateTime, enum_column, utcnow
from attune.domain.enums import PackEnvironmentStatus, TestTriggerReason, values


class Pack(IdMixin, TimestampMixin, Base):
    """A bundle of automation components (actions, sensors, triggers, rules, workflows)."""

    __tablename__ = "pack"

    ref: Mapped[str] = mapped_column(sa.Text, nullable=False, unique=True)
    label: Mapped[str] = mapped_column(sa.Text, nullable=False)
    description: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    version: Mapped[str] = mapped_column(sa.Text, nullable=False)
    conf_schema: Mapped[dict[str, Any]] = mapped_column(Json, nullable=False, default=dict)
    config: Mapped[dict[str, Any]] = mapped_column(Json, nullable=False, default=dict)
    meta: Mapped[dict[str, Any]] = mapped_column(Json, nullable=False, default=dict)
    tags: Mapped[list[str]] = mapped_column(TextList, nullable=False, default=list)
    runtime_deps: Mapped[list[str]] = mapped_column(TextList, nullable=False, default=list)
    dependencies: Mapped[list[str]] = mapped_column(TextList, nullable=False, default=list)
    is_standard: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=False)
    installers: Mapped[Any] = mapped_column(Json, nullable=True, default=list)
    source_type: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    source_url: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    source_ref: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    checksum: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    checksum_verified: Mapped[bool | None] = mapped_column(sa.Boolean, nullable=True, default=False)
    installation_method: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    storage_path: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    installed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    installed_by: Mapped[int | None] = mapped_column(BigId, fk("identity", "SET NULL"), nullable=True)


class Runtime(IdMixin, TimestampMixin, Base):
    """A unified execution-environment definition used by actions and sensors."""

    __tablename__ = "runtime"

    ref: Mapped[str] = mapped_column(sa.Text, nullable=False, unique=True)
    pack: Mapped[int | None] = mapped_column(BigId, fk("pack", "CASCADE"), nullable=True, index=True)
    pack_ref: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    description: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    name: Mapped[str] = mapped_column(sa.Text, nullable=False)
    distributions: Mapped[dict[str, Any]] = mapped_column(Json, nullable=False)
    installation: Mapped[Any] = mapped_column(Json, nullable=True)
    installers: Mapped[Any] = mapped_column(Json, nullable=True, default=list)
    # Empty means a native runtime (binaries run directly).
    execution_config: Mapped[dict[str, Any]] = mapped_column(Json, nullable=False, default=dict)


class RuntimeVersion(IdMixin, TimestampMixin, Base):
    """One concrete version of a runtime, with a complete replacement execution config."""

    __tablename__ = "runtime_version"
    __table_args__ = (
        sa.UniqueConstraint("runtime", "version"),
        sa.Index(None, "runtime", "version_major", "version_minor", "version_patch"),
    )

    runtime: Mapped[int] = mapped_column(BigId, fk("runtime", "CASCADE"), nullable=False)
    runtime_ref: Mapped[str] = mapped_column(sa.Text, nullable=False)
    version: Mapped[str] = mapped_column(sa.Text, nullable=False)
    version_major: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    version_minor: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    version_patch: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    execution_config: Mapped[dict[str, Any]] = mapped_column(Json, nullable=False, default=dict)
    distributions: Mapped[dict[str, Any]] = mapped_column(Json, nullable=False, default=dict)
    is_default: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=False)
    available: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=True)
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    meta: Mapped[dict[str, Any]] = mapped_column(Json, nullable=False, default=dict)


class PackEnvironment(IdMixin, TimestampMixin, Base):
    """The installed dependency environment of one pack for one runtime."""

    __tablename__ = "pack_environment"
    __table_args__ = (sa.UniqueConstraint("pack", "runtime"),)

    pack: Mapped[int] = mapped_column(BigId, fk("pack", "CASCADE"), nullable=False)
    pack_ref: Mapped[str] = mapped_column(sa.Text, nullable=False)
    runtime: Mapped[int] = mapped_column(BigId, fk("runtime", "CASCADE"), nullable=False, index=True)
    runtime_ref: Mapped[str] = mapped_column(sa.Text, nullable=False)
    env_path: Mapped[str] = mapped_column(sa.Text, nullable=False)
    status: Mapped[str] = mapped_column(
        enum_column("pack_environment_status_enum", values(PackEnvironmentStatus)),
        nullable=False,
        default=PackEnvironmentStatus.PENDING.value,
    )
    installed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_verified: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    install_log: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    install_error: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    # ``metadata`` is reserved on declarative classes, hence the trailing underscore.
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", Json, nullable=True, default=dict)


class PackTestExecution(IdMixin, CreatedMixin, Base):
    """One run of a pack's test suite (append-only)."""

    __tablename__ = "pack_test_execution"
    __table_args__ = (
        one_of("trigger_reason", values(TestTriggerReason)),
        sa.CheckConstraint(
            "total_tests >= 0 AND passed >= 0 AND failed >= 0 AND skipped >= 0", name="counts_non_negative"
        ),
        sa.CheckConstraint("pass_rate >= 0 AND pass_rate <= 1", name="pass_rate_range"),
        sa.Index(None, "pack_id", "execution_time"),
    )

    pack_id: Mapped[int] = mapped_column(BigId, fk("pack", "CASCADE"), nullable=False)
    pack_version: Mapped[str] = mapped_column(sa.String(50), nullable=False)
    execution_time: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    trigger_reason: Mapped[str] = mapped_column(sa.String(50), nullable=False)
    total_tests: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    passed: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    failed: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    skipped: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    # Floats, not Decimals: SQLite has no decimal type and SQLAlchemy warns about lossy Decimals there.
    pass_rate: Mapped[float] = mapped_column(sa.Numeric(5, 4, asdecimal=False), nullable=False)
    duration_ms: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    result: Mapped[dict[str, Any]] = mapped_column(Json, nullable=False)
