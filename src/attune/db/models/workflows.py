"""Workflow definitions and the orchestration state of running workflows (docs/development.md)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from attune.db.models._helpers import fk
from attune.db.models.base import Base, IdMixin, TimestampMixin
from attune.db.types import BigId, Json, TextList, enum_column
from attune.domain.enums import ExecutionStatus, values


class WorkflowDefinition(IdMixin, TimestampMixin, Base):
    """A workflow graph; its companion action (``action.workflow_def``) is what users execute."""

    __tablename__ = "workflow_definition"

    ref: Mapped[str] = mapped_column(sa.String(255), nullable=False, unique=True)
    pack: Mapped[int] = mapped_column(BigId, fk("pack", "CASCADE"), nullable=False, index=True)
    pack_ref: Mapped[str] = mapped_column(sa.String(255), nullable=False)
    label: Mapped[str] = mapped_column(sa.String(255), nullable=False)
    description: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    version: Mapped[str] = mapped_column(sa.String(50), nullable=False)
    param_schema: Mapped[Any] = mapped_column(Json, nullable=True)
    out_schema: Mapped[Any] = mapped_column(Json, nullable=True)
    definition: Mapped[dict[str, Any]] = mapped_column(Json, nullable=False)
    tags: Mapped[list[str] | None] = mapped_column(TextList, nullable=True, default=list)
    # A disabled workflow fails its executions.
    enabled: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=True)


class WorkflowExecution(IdMixin, TimestampMixin, Base):
    """The orchestration state of one running workflow."""

    __tablename__ = "workflow_execution"

    # The parent (workflow) execution; no FK because execution is hypertable-shaped.
    execution: Mapped[int] = mapped_column(BigId, nullable=False, index=True)
    workflow_def: Mapped[int] = mapped_column(
        BigId, fk("workflow_definition", "CASCADE"), nullable=False, index=True
    )
    current_tasks: Mapped[list[str] | None] = mapped_column(TextList, nullable=True, default=list)
    completed_tasks: Mapped[list[str] | None] = mapped_column(TextList, nullable=True, default=list)
    failed_tasks: Mapped[list[str] | None] = mapped_column(TextList, nullable=True, default=list)
    skipped_tasks: Mapped[list[str] | None] = mapped_column(TextList, nullable=True, default=list)
    variables: Mapped[dict[str, Any] | None] = mapped_column(Json, nullable=True, default=dict)
    task_graph: Mapped[dict[str, Any]] = mapped_column(Json, nullable=False)
    status: Mapped[str] = mapped_column(
        enum_column("execution_status_enum", values(ExecutionStatus)),
        nullable=False,
        default=ExecutionStatus.REQUESTED.value,
    )
    error_message: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    paused: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=False)
    pause_reason: Mapped[str | None] = mapped_column(sa.Text, nullable=True)


class WorkflowItem(IdMixin, Base):
    """One item of a ``with_items`` task of a running workflow: its value and, once done, outcome.

    Kept out of ``workflow_execution.variables`` so a step of a 10,000-item task writes one row
    instead of re-encoding every item and result (docs/workflows.md).
    """

    __tablename__ = "workflow_item"
    __table_args__ = (sa.UniqueConstraint("workflow_execution", "task_name", "item_index"),)

    workflow_execution: Mapped[int] = mapped_column(
        BigId, fk("workflow_execution", "CASCADE"), nullable=False
    )
    task_name: Mapped[str] = mapped_column(sa.String(255), nullable=False)
    item_index: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    item: Mapped[Any] = mapped_column(Json, nullable=True)
    # None while the item waits or runs; else completed, failed, timeout or cancelled.
    status: Mapped[str | None] = mapped_column(sa.String(32), nullable=True)
    result: Mapped[Any] = mapped_column(Json, nullable=True)
