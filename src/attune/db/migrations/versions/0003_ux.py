"""Action retry policy, manual runs under policies, the ``paused`` execution status.

Revision ID: 0003_ux
Revises: 0002_workflow_items
Create Date: 2026-12-06

* ``action.retry_delay_seconds`` / ``action.retry_on``: with ``max_retries`` they form the action's
  ``retry: {count, delay, on}`` policy (docs/packs.md).
* ``policy.apply_to_manual``: whether manual runs count against the policy (default true;
  docs/policies.md).
* ``execution_status_enum`` gains ``paused`` (a paused workflow's execution, docs/workflows.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003_ux"
down_revision: str | Sequence[str] | None = "0002_workflow_items"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")

_OLD_STATUSES = (
    "requested",
    "scheduling",
    "scheduled",
    "running",
    "completed",
    "failed",
    "canceling",
    "cancelled",
    "timeout",
    "abandoned",
)
_NEW_STATUSES = (*_OLD_STATUSES, "paused")
_STATUS_TABLES = ("execution", "workflow_execution")


def _status_check(statuses: Sequence[str]) -> str:
    return "status IN (" + ", ".join(f"'{s}'" for s in statuses) + ")"


def _replace_status_checks(statuses: Sequence[str]) -> None:
    for table in _STATUS_TABLES:
        name = f"{table}_execution_status_enum"
        # SQLite cannot alter a CHECK constraint: batch mode copies the table.
        with op.batch_alter_table(table, recreate="auto") as batch:
            batch.drop_constraint(op.f(name), type_="check")
            batch.create_check_constraint(op.f(name), _status_check(statuses))


def upgrade() -> None:
    with op.batch_alter_table("action") as batch:
        batch.add_column(sa.Column("retry_delay_seconds", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("retry_on", Json, nullable=True))
    with op.batch_alter_table("policy") as batch:
        batch.add_column(sa.Column("apply_to_manual", sa.Boolean(), nullable=False, server_default=sa.true()))
    _replace_status_checks(_NEW_STATUSES)


def downgrade() -> None:
    op.execute("UPDATE execution SET status = 'running' WHERE status = 'paused'")
    op.execute("UPDATE workflow_execution SET status = 'running' WHERE status = 'paused'")
    _replace_status_checks(_OLD_STATUSES)
    with op.batch_alter_table("policy") as batch:
        batch.drop_column("apply_to_manual")
    with op.batch_alter_table("action") as batch:
        batch.drop_column("retry_on")
        batch.drop_column("retry_delay_seconds")
