"""Identities, RBAC and execution policies (docs/development.md)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from attune.db.models._helpers import fk, one_of
from attune.db.models.base import Base, CreatedMixin, IdMixin, TimestampMixin
from attune.db.types import BigId, Json, TextList, enum_column
from attune.domain.enums import PolicyMethod, values


class Identity(IdMixin, TimestampMixin, Base):
    """A user or service account."""

    __tablename__ = "identity"

    login: Mapped[str] = mapped_column(sa.Text, nullable=False, unique=True)
    display_name: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    # Argon2id encoded hash; NULL for service or external accounts.
    password_hash: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    attributes: Mapped[dict[str, Any]] = mapped_column(Json, nullable=False, default=dict)
    #: Bumped by a password change; tokens issued with an older value are refused (docs/security.md).
    token_version: Mapped[int] = mapped_column(
        sa.Integer, nullable=False, default=0, server_default=sa.text("0")
    )
    # An administrator passes every permission check (docs/security.md "Permission sets").
    is_admin: Mapped[bool] = mapped_column(
        sa.Boolean, nullable=False, default=False, server_default=sa.false()
    )


class PermissionSet(IdMixin, TimestampMixin, Base):
    """A named bundle of grants, owned by a pack or ad hoc."""

    __tablename__ = "permission_set"

    ref: Mapped[str] = mapped_column(sa.Text, nullable=False, unique=True)
    pack: Mapped[int | None] = mapped_column(BigId, fk("pack", "CASCADE"), nullable=True, index=True)
    pack_ref: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    label: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    description: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    grants: Mapped[list[Any]] = mapped_column(Json, nullable=False, default=list)


class PermissionAssignment(IdMixin, CreatedMixin, Base):
    """Grants a permission set to an identity (inserted or deleted, never updated)."""

    __tablename__ = "permission_assignment"
    __table_args__ = (sa.UniqueConstraint("identity", "permset"),)

    identity: Mapped[int] = mapped_column(BigId, fk("identity", "CASCADE"), nullable=False)
    permset: Mapped[int] = mapped_column(BigId, fk("permission_set", "CASCADE"), nullable=False, index=True)


class Policy(IdMixin, TimestampMixin, Base):
    """A concurrency policy on an action: cancel or enqueue beyond ``threshold`` running executions."""

    __tablename__ = "policy"
    __table_args__ = (
        sa.CheckConstraint("threshold > 0", name="threshold_positive"),
        one_of("kind", ("concurrency", "rate_limit")),
    )

    ref: Mapped[str] = mapped_column(sa.Text, nullable=False, unique=True)
    pack: Mapped[int | None] = mapped_column(BigId, fk("pack", "CASCADE"), nullable=True, index=True)
    pack_ref: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    action: Mapped[int | None] = mapped_column(BigId, fk("action", "CASCADE"), nullable=True, index=True)
    action_ref: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    # Parameter names whose values group executions for the threshold.
    parameters: Mapped[list[str]] = mapped_column(TextList, nullable=False, default=list)
    method: Mapped[str] = mapped_column(
        enum_column("policy_method_enum", values(PolicyMethod)), nullable=False
    )
    threshold: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    # Attune extension: ``concurrency`` (threshold = running at once) or ``rate_limit``
    # (threshold = executions started per ``window_seconds``).
    kind: Mapped[str] = mapped_column(sa.Text, nullable=False, default="concurrency")
    window_seconds: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    # Attune extension: whether manual runs (no rule, no workflow) count against this policy.
    apply_to_manual: Mapped[bool] = mapped_column(
        sa.Boolean, nullable=False, default=True, server_default=sa.true()
    )
    name: Mapped[str] = mapped_column(sa.Text, nullable=False)
    description: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    tags: Mapped[list[str]] = mapped_column(TextList, nullable=False, default=list)
