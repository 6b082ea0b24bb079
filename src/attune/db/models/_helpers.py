"""Small column builders shared by the model modules."""

from __future__ import annotations

import sqlalchemy as sa


def one_of(column: str, allowed: tuple[str, ...], *, name: str | None = None) -> sa.CheckConstraint:
    """A portable ``column IN (...)`` CHECK; named ``<table>_<name or column>`` by the convention."""
    quoted = ", ".join("'" + value.replace("'", "''") + "'" for value in allowed)
    return sa.CheckConstraint(f"{column} IN ({quoted})", name=name or column)


def fk(target: str, ondelete: str | None = None) -> sa.ForeignKey:
    """A foreign key to ``<target>.id`` with an explicit ON DELETE policy (None = restrict)."""
    return sa.ForeignKey(f"{target}.id", ondelete=ondelete)
