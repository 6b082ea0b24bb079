"""Idempotent consumers: one enforcement per (event, rule), one first execution per enforcement.

Revision ID: 0004_delivery
Revises: 0003_ux
Create Date: 2026-12-06

Messages are delivered at least once (docs/operations.md, "Guarantees"); these unique indexes
make a redelivered ``EventCreated`` or ``EnforcementCreated`` unable to create a second row.
Duplicates a database may already hold (from before this revision) are kept: the older row
wins the index, the newer ones get the column cleared, so history stays readable.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_delivery"
down_revision: str | Sequence[str] | None = "0004_input"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FIRST_RULE_RUN = "enforcement IS NOT NULL AND parent IS NULL AND retry_count = 0"


def upgrade() -> None:
    # Older duplicates (possible before this revision): keep the first, detach the others.
    op.execute(
        "UPDATE enforcement SET event = NULL WHERE event IS NOT NULL AND rule IS NOT NULL AND id > "
        "(SELECT MIN(e2.id) FROM enforcement e2 WHERE e2.event = enforcement.event "
        "AND e2.rule = enforcement.rule)"
    )
    op.execute(
        f"UPDATE execution SET enforcement = NULL WHERE {_FIRST_RULE_RUN} AND id > "
        "(SELECT MIN(x2.id) FROM execution x2 WHERE x2.enforcement = execution.enforcement "
        "AND x2.parent IS NULL AND x2.retry_count = 0)"
    )
    op.create_index("uq_enforcement_event_rule", "enforcement", ["event", "rule"], unique=True)
    op.create_index(
        "uq_execution_enforcement",
        "execution",
        ["enforcement"],
        unique=True,
        sqlite_where=sa.text(_FIRST_RULE_RUN),
        postgresql_where=sa.text(_FIRST_RULE_RUN),
    )


def downgrade() -> None:
    op.drop_index("uq_execution_enforcement", table_name="execution")
    op.drop_index("uq_enforcement_event_rule", table_name="enforcement")
