"""Sessions: ``identity.token_version`` revokes earlier tokens on a password change.

Revision ID: 0004_auth
Revises: 0003_ux
Create Date: 2026-12-06

Every access and refresh token carries the identity's ``token_version`` at issue time (claim
``tv``); a password change increments the column, so tokens issued before it answer 401
(docs/security.md, "Sign-up and sessions").
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_auth"
down_revision: str | Sequence[str] | None = "0003_ux"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("identity") as batch:
        batch.add_column(
            sa.Column("token_version", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )


def downgrade() -> None:
    with op.batch_alter_table("identity") as batch:
        batch.drop_column("token_version")
