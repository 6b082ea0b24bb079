"""Portable column types: one definition that works on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect

#: 64-bit ids; SQLite only auto-increments an ``INTEGER PRIMARY KEY``.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

#: JSON documents: JSONB on PostgreSQL, JSON text on SQLite.
Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

#: Lists of strings: TEXT[] on PostgreSQL, a JSON list on SQLite.
TextList = sa.JSON().with_variant(postgresql.ARRAY(sa.Text()), "postgresql")


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on both databases.

    SQLite has no timezone type, so values are stored naive in UTC and re-tagged on the way out.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        parsed: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)


def utcnow() -> datetime:
    """The current time, timezone-aware UTC (the one clock for row timestamps)."""
    return datetime.now(UTC)


def enum_column(name: str, values: tuple[str, ...]) -> sa.Enum:
    """A portable enum: VARCHAR plus a named CHECK on both databases."""
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=32)
