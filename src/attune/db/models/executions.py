"""Executions, inquiries, workers and notifications (docs/development.md).

``execution`` is hypertable-shaped on PostgreSQL: no foreign key targets it, and its own references
(action, parent, enforcement, executor, ...) are plain integers so history survives deletions.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from attune.db.models._helpers import fk
from attune.db.models.base import Base, IdMixin, TimestampMixin
from attune.db.types import BigId, Json, UTCDateTime, enum_column
from attune.domain.enums import (
    ExecutionStatus,
    InquiryStatus,
    NotificationState,
    WorkerRole,
    WorkerStatus,
    WorkerType,
    values,
)

#: The executions ``uq_execution_enforcement`` covers: the first run an enforcement requested.
FIRST_RULE_RUN = sa.text("enforcement IS NOT NULL AND parent IS NULL AND retry_count = 0")


class Execution(IdMixin, TimestampMixin, Base):
    """One run of an action, a workflow, or a workflow task."""

    __tablename__ = "execution"
    __table_args__ = (
        sa.Index(None, "status", "created"),
        # ``updated`` drives the scheduled-timeout monitor.
        sa.Index(None, "status", "updated"),
        # Also serves lookups by ``parent`` alone (leading column).
        sa.Index(None, "parent", "created"),
        # Sibling lookups inside one workflow run; also serves ``workflow_execution_id`` alone.
        sa.Index(None, "workflow_execution_id", "workflow_task_name"),
        # Busy executions per worker (scheduling picks the least loaded worker on every dispatch);
        # also serves ``worker`` alone.
        sa.Index(None, "worker", "status"),
        # One execution per enforcement, however often ``EnforcementCreated`` is delivered. Retries
        # (``retry_count`` > 0) and workflow tasks (a ``parent``) carry the enforcement on.
        sa.Index(
            "uq_execution_enforcement",
            "enforcement",
            unique=True,
            sqlite_where=FIRST_RULE_RUN,
            postgresql_where=FIRST_RULE_RUN,
        ),
    )

    action: Mapped[int | None] = mapped_column(BigId, nullable=True, index=True)
    action_ref: Mapped[str] = mapped_column(sa.Text, nullable=False, index=True)
    config: Mapped[Any] = mapped_column(Json, nullable=True)
    env_vars: Mapped[Any] = mapped_column(Json, nullable=True)
    parent: Mapped[int | None] = mapped_column(BigId, nullable=True)
    enforcement: Mapped[int | None] = mapped_column(BigId, nullable=True, index=True)
    executor: Mapped[int | None] = mapped_column(BigId, nullable=True, index=True)
    status: Mapped[str] = mapped_column(
        enum_column("execution_status_enum", values(ExecutionStatus)),
        nullable=False,
        default=ExecutionStatus.REQUESTED.value,
    )
    result: Mapped[Any] = mapped_column(Json, nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The worker the execution was scheduled on (no FK: workers come and go, history stays).
    worker: Mapped[int | None] = mapped_column(BigId, nullable=True)
    is_workflow: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=False)
    workflow_def: Mapped[int | None] = mapped_column(BigId, nullable=True, index=True)
    workflow_task: Mapped[Any] = mapped_column(Json, nullable=True)
    # Shadow copies of workflow_task.workflow_execution / task_name, so siblings can be found
    # with an index instead of a JSON scan.
    workflow_execution_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    workflow_task_name: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    retry_count: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    max_retries: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    retry_reason: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    original_execution: Mapped[int | None] = mapped_column(BigId, nullable=True, index=True)
    # Secret parameters, encrypted as one JSON object; never part of ``config`` (Attune extension).
    secret_params: Mapped[str | None] = mapped_column(sa.Text, nullable=True)


class Inquiry(IdMixin, TimestampMixin, Base):
    """A question an execution asks a human, answered through the API."""

    __tablename__ = "inquiry"

    execution: Mapped[int] = mapped_column(BigId, nullable=False, index=True)
    prompt: Mapped[str] = mapped_column(sa.Text, nullable=False)
    response_schema: Mapped[Any] = mapped_column(Json, nullable=True)
    assigned_to: Mapped[int | None] = mapped_column(
        BigId, fk("identity", "SET NULL"), nullable=True, index=True
    )
    status: Mapped[str] = mapped_column(
        enum_column("inquiry_status_enum", values(InquiryStatus)),
        nullable=False,
        default=InquiryStatus.PENDING.value,
        index=True,
    )
    response: Mapped[Any] = mapped_column(Json, nullable=True)
    timeout_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    responded_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Worker(IdMixin, TimestampMixin, Base):
    """A registered action worker or sensor service."""

    __tablename__ = "worker"

    name: Mapped[str] = mapped_column(sa.Text, nullable=False, unique=True)
    worker_type: Mapped[str] = mapped_column(
        enum_column("worker_type_enum", values(WorkerType)), nullable=False
    )
    worker_role: Mapped[str] = mapped_column(
        enum_column("worker_role_enum", values(WorkerRole)), nullable=False
    )
    # Deprecated: use capabilities.runtimes.
    runtime: Mapped[int | None] = mapped_column(BigId, fk("runtime", "SET NULL"), nullable=True, index=True)
    host: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    port: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    status: Mapped[str] = mapped_column(
        enum_column("worker_status_enum", values(WorkerStatus)),
        nullable=False,
        default=WorkerStatus.ACTIVE.value,
    )
    capabilities: Mapped[Any] = mapped_column(Json, nullable=True)
    meta: Mapped[Any] = mapped_column(Json, nullable=True)
    last_heartbeat: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Notification(IdMixin, TimestampMixin, Base):
    """A change notification addressed to a channel (delivered to WebSocket subscribers)."""

    __tablename__ = "notification"

    channel: Mapped[str] = mapped_column(sa.Text, nullable=False)
    entity_type: Mapped[str] = mapped_column(sa.Text, nullable=False)
    # An id or ref, as text.
    entity: Mapped[str] = mapped_column(sa.Text, nullable=False)
    activity: Mapped[str] = mapped_column(sa.Text, nullable=False)
    state: Mapped[str] = mapped_column(
        enum_column("notification_status_enum", values(NotificationState)),
        nullable=False,
        default=NotificationState.CREATED.value,
    )
    content: Mapped[Any] = mapped_column(Json, nullable=True)
