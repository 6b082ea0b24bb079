"""``enforcement.error``: why a rule firing produced no execution (docs/security.md "Input limits").

Revision ID: 0004_input
Revises: 0003_ux
Create Date: 2026-12-06

A rule whose templates go over their budget (time, output size) gets a ``disabled`` enforcement
that carries the reason, so the failure shows in the API instead of only in the server log.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_input"
down_revision: str | Sequence[str] | None = "0004_rbac"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("enforcement") as batch:
        batch.add_column(sa.Column("error", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("enforcement") as batch:
        batch.drop_column("error")
