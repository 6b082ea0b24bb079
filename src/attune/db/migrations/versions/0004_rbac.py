"""Role-based access control: ``identity.is_admin``.

Revision ID: 0004_rbac
Revises: 0003_ux
Create Date: 2026-12-06

* ``identity.is_admin``: an administrator passes every permission check (docs/security.md
  "Permission sets"). Before this revision every identity could do everything; so that an
  upgraded deployment keeps someone able to administer it, the oldest identity that can log in
  (a password is set) becomes the administrator. The built-in permission sets are seeded at start.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_rbac"
down_revision: str | Sequence[str] | None = "0004_auth"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("identity", sa.Column("is_admin", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.execute(
        "UPDATE identity SET is_admin = true WHERE id = "
        "(SELECT min(id) FROM identity WHERE password_hash IS NOT NULL)"
    )


def downgrade() -> None:
    op.drop_column("identity", "is_admin")
