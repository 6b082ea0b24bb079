"""Triggers, sensors, events, enforcements, actions and rules (docs/development.md).

``event`` and ``enforcement`` are hypertable-shaped on PostgreSQL, so nothing declares a foreign key
to them; columns that point at them are plain integers that may dangle.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from attune.db.models._helpers import fk, one_of
from attune.db.models.base import Base, CreatedMixin, IdMixin, TimestampMixin
from attune.db.types import BigId, Json, UTCDateTime, enum_column
from attune.domain.enums import (
    EnforcementCondition,
    EnforcementStatus,
    OutputFormat,
    ParameterDelivery,
    ParameterFormat,
    values,
)
from attune.domain.retry import RetryPolicy, policy_of


class Trigger(IdMixin, TimestampMixin, Base):
    """An event type; sensors and webhooks emit events of it."""

    __tablename__ = "trigger"

    ref: Mapped[str] = mapped_column(sa.Text, nullable=False, unique=True)
    pack: Mapped[int | None] = mapped_column(BigId, fk("pack", "CASCADE"), nullable=True, index=True)
    pack_ref: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    label: Mapped[str] = mapped_column(sa.Text, nullable=False)
    description: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    enabled: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=True)
    is_adhoc: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=False)
    param_schema: Mapped[Any] = mapped_column(Json, nullable=True)
    out_schema: Mapped[Any] = mapped_column(Json, nullable=True)
    webhook_enabled: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=False)
    # ``wh_`` + 32 lowercase hex characters; cleared when webhooks are disabled.
    webhook_key: Mapped[str | None] = mapped_column(sa.String(64), nullable=True, unique=True)
    webhook_config: Mapped[dict[str, Any] | None] = mapped_column(Json, nullable=True, default=dict)


class Sensor(IdMixin, TimestampMixin, Base):
    """A long-running process that emits events for one trigger."""

    __tablename__ = "sensor"

    ref: Mapped[str] = mapped_column(sa.Text, nullable=False, unique=True)
    pack: Mapped[int | None] = mapped_column(BigId, fk("pack", "CASCADE"), nullable=True, index=True)
    pack_ref: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    label: Mapped[str] = mapped_column(sa.Text, nullable=False)
    description: Mapped[str] = mapped_column(sa.Text, nullable=False)
    entrypoint: Mapped[str] = mapped_column(sa.Text, nullable=False)
    runtime: Mapped[int] = mapped_column(BigId, fk("runtime", "CASCADE"), nullable=False, index=True)
    runtime_ref: Mapped[str] = mapped_column(sa.Text, nullable=False)
    trigger: Mapped[int] = mapped_column(BigId, fk("trigger", "CASCADE"), nullable=False, index=True)
    trigger_ref: Mapped[str] = mapped_column(sa.Text, nullable=False)
    enabled: Mapped[bool] = mapped_column(sa.Boolean, nullable=False)
    is_adhoc: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=False)
    param_schema: Mapped[Any] = mapped_column(Json, nullable=True)
    config: Mapped[Any] = mapped_column(Json, nullable=True)
    runtime_version_constraint: Mapped[str | None] = mapped_column(sa.Text, nullable=True)


class Event(IdMixin, CreatedMixin, Base):
    """One firing of a trigger (insert-only)."""

    __tablename__ = "event"
    __table_args__ = (sa.Index(None, "trigger_ref", "created"),)

    trigger: Mapped[int | None] = mapped_column(BigId, fk("trigger", "SET NULL"), nullable=True, index=True)
    trigger_ref: Mapped[str] = mapped_column(sa.Text, nullable=False)
    config: Mapped[Any] = mapped_column(Json, nullable=True)
    payload: Mapped[Any] = mapped_column(Json, nullable=True)
    source: Mapped[int | None] = mapped_column(BigId, fk("sensor", "SET NULL"), nullable=True, index=True)
    source_ref: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    rule: Mapped[int | None] = mapped_column(BigId, fk("rule", "SET NULL"), nullable=True, index=True)
    rule_ref: Mapped[str | None] = mapped_column(sa.Text, nullable=True)


class Enforcement(IdMixin, CreatedMixin, Base):
    """A rule activated by an event; its status changes exactly once."""

    __tablename__ = "enforcement"
    __table_args__ = (
        sa.Index(None, "status", "created"),
        # One enforcement per (event, rule), however often the event is delivered (consumers are
        # idempotent; docs/operations.md, "Guarantees"). NULLs (a deleted rule) never collide.
        sa.Index("uq_enforcement_event_rule", "event", "rule", unique=True),
    )

    rule: Mapped[int | None] = mapped_column(BigId, fk("rule", "SET NULL"), nullable=True, index=True)
    rule_ref: Mapped[str] = mapped_column(sa.Text, nullable=False)
    trigger_ref: Mapped[str] = mapped_column(sa.Text, nullable=False)
    # The resolved action parameters (rule.action_params after templating).
    config: Mapped[Any] = mapped_column(Json, nullable=True)
    event: Mapped[int | None] = mapped_column(BigId, nullable=True, index=True)
    status: Mapped[str] = mapped_column(
        enum_column("enforcement_status_enum", values(EnforcementStatus)),
        nullable=False,
        default=EnforcementStatus.CREATED.value,
    )
    payload: Mapped[dict[str, Any]] = mapped_column(Json, nullable=False, default=dict)
    condition: Mapped[str] = mapped_column(
        enum_column("enforcement_condition_enum", values(EnforcementCondition)),
        nullable=False,
        default=EnforcementCondition.ALL.value,
    )
    conditions: Mapped[list[Any]] = mapped_column(Json, nullable=False, default=list)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Why the firing produced no execution, when it is known at the firing (a template over budget).
    error: Mapped[str | None] = mapped_column(sa.Text, nullable=True)


class Action(IdMixin, TimestampMixin, Base):
    """An executable task; a non-null ``workflow_def`` makes it a workflow."""

    __tablename__ = "action"
    __table_args__ = (
        one_of("parameter_delivery", values(ParameterDelivery)),
        one_of("parameter_format", values(ParameterFormat)),
        one_of("output_format", values(OutputFormat)),
    )

    ref: Mapped[str] = mapped_column(sa.Text, nullable=False, unique=True)
    pack: Mapped[int] = mapped_column(BigId, fk("pack", "CASCADE"), nullable=False, index=True)
    pack_ref: Mapped[str] = mapped_column(sa.Text, nullable=False)
    label: Mapped[str] = mapped_column(sa.Text, nullable=False)
    description: Mapped[str] = mapped_column(sa.Text, nullable=False)
    entrypoint: Mapped[str] = mapped_column(sa.Text, nullable=False)
    runtime: Mapped[int | None] = mapped_column(BigId, fk("runtime"), nullable=True, index=True)
    param_schema: Mapped[Any] = mapped_column(Json, nullable=True)
    out_schema: Mapped[Any] = mapped_column(Json, nullable=True)
    parameter_delivery: Mapped[str] = mapped_column(
        sa.Text, nullable=False, default=ParameterDelivery.STDIN.value
    )
    parameter_format: Mapped[str] = mapped_column(sa.Text, nullable=False, default=ParameterFormat.JSON.value)
    output_format: Mapped[str] = mapped_column(sa.Text, nullable=False, default=OutputFormat.TEXT.value)
    is_adhoc: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=False)
    timeout_seconds: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    # The retry policy (docs/packs.md): ``max_retries`` is its ``count``; ``retry_delay_seconds``
    # null means exponential backoff; ``retry_on`` null means failed and timeout.
    max_retries: Mapped[int | None] = mapped_column(sa.Integer, nullable=True, default=0)
    retry_delay_seconds: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    retry_on: Mapped[list[str] | None] = mapped_column(Json, nullable=True)

    @property
    def retry_policy(self) -> RetryPolicy:
        """The retry policy these columns store."""
        return policy_of(self.max_retries, self.retry_delay_seconds, self.retry_on)

    @property
    def retry(self) -> dict[str, Any]:
        """The retry policy as the API shows it: ``{"count", "delay", "on"}``."""
        return self.retry_policy.as_dict()

    runtime_version_constraint: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    workflow_def: Mapped[int | None] = mapped_column(
        BigId, fk("workflow_definition", "CASCADE"), nullable=True, index=True
    )


class Rule(IdMixin, TimestampMixin, Base):
    """Connects a trigger to an action; a NULL action/trigger leaves it inert but preserved."""

    __tablename__ = "rule"

    ref: Mapped[str] = mapped_column(sa.Text, nullable=False, unique=True)
    pack: Mapped[int] = mapped_column(BigId, fk("pack", "CASCADE"), nullable=False, index=True)
    pack_ref: Mapped[str] = mapped_column(sa.Text, nullable=False)
    label: Mapped[str] = mapped_column(sa.Text, nullable=False)
    description: Mapped[str] = mapped_column(sa.Text, nullable=False)
    action: Mapped[int | None] = mapped_column(BigId, fk("action", "SET NULL"), nullable=True, index=True)
    action_ref: Mapped[str] = mapped_column(sa.Text, nullable=False)
    trigger: Mapped[int | None] = mapped_column(BigId, fk("trigger", "SET NULL"), nullable=True, index=True)
    # Matching uses the ref, so it keeps working across trigger re-installs.
    trigger_ref: Mapped[str] = mapped_column(sa.Text, nullable=False, index=True)
    conditions: Mapped[list[Any]] = mapped_column(Json, nullable=False, default=list)
    action_params: Mapped[dict[str, Any] | None] = mapped_column(Json, nullable=True, default=dict)
    trigger_params: Mapped[dict[str, Any] | None] = mapped_column(Json, nullable=True, default=dict)
    enabled: Mapped[bool] = mapped_column(sa.Boolean, nullable=False)
    is_adhoc: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=False)
