"""Items of with_items tasks in their own table; busy executions per worker by index.

Revision ID: 0002_workflow_items
Revises: 0001_initial
Create Date: 2026-11-27

A with_items task of thousands of items used to live inside ``workflow_execution.variables``, which
every workflow step rewrote whole; each item now has a row that a step updates on its own.
Scheduling counts busy executions per worker on every dispatch: (worker, status) keeps that
count from scanning every execution the worker ever ran.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002_workflow_items"
down_revision: str | Sequence[str] | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "workflow_item",
        sa.Column("workflow_execution", BigId, nullable=False),
        sa.Column("task_name", sa.String(length=255), nullable=False),
        sa.Column("item_index", sa.Integer(), nullable=False),
        sa.Column("item", Json, nullable=True),
        sa.Column("status", sa.String(length=32), nullable=True),
        sa.Column("result", Json, nullable=True),
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.ForeignKeyConstraint(
            ["workflow_execution"],
            ["workflow_execution.id"],
            name=op.f("fk_workflow_item_workflow_execution_workflow_execution"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflow_item")),
        sa.UniqueConstraint(
            "workflow_execution",
            "task_name",
            "item_index",
            name=op.f("uq_workflow_item_workflow_execution_task_name_item_index"),
        ),
    )

    op.drop_index("ix_execution_worker", table_name="execution")
    op.create_index(op.f("ix_execution_worker_status"), "execution", ["worker", "status"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_execution_worker_status"), table_name="execution")
    op.create_index(op.f("ix_execution_worker"), "execution", ["worker"], unique=False)
    op.drop_table("workflow_item")
