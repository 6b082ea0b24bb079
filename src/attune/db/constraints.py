"""Which constraint a database refused a write for, on either backend (docs/api.md, errors).

The drivers say it differently — PostgreSQL (asyncpg) with a SQLSTATE and the constraint's
name, SQLite only in the message text — so the reading lives here, below the API that turns it
into a 409 or 422.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from sqlalchemy.exc import DBAPIError, IntegrityError

Kind = Literal["unique", "foreign_key", "check", "not_null", "other"]

_SQLITE_UNIQUE = re.compile(r"UNIQUE constraint failed: (.+)")
_SQLITE_CHECK = re.compile(r"CHECK constraint failed: (\S+)")


@dataclass(frozen=True)
class Violation:
    """The kind of constraint an ``IntegrityError`` broke and its name, when the driver says."""

    kind: Kind
    name: str | None


def violation(exc: IntegrityError) -> Violation:
    """Read ``exc`` (:class:`Violation` of kind ``other`` when it is none of the four)."""
    orig = exc.orig
    cause = getattr(orig, "__cause__", None)
    constraint = getattr(cause, "constraint_name", None) or getattr(orig, "constraint_name", None)
    sqlstate = getattr(cause, "sqlstate", None) or getattr(orig, "sqlstate", None)
    text = str(orig)
    if sqlstate == "23505" or "UNIQUE constraint failed" in text:
        match = _SQLITE_UNIQUE.search(text)
        return Violation(
            "unique", constraint or (match.group(1).replace(", ", "_").replace(".", "_") if match else None)
        )
    if sqlstate == "23503" or "FOREIGN KEY constraint failed" in text:
        return Violation("foreign_key", constraint)
    if sqlstate == "23514" or "CHECK constraint failed" in text:
        match = _SQLITE_CHECK.search(text)
        return Violation("check", constraint or (match.group(1) if match else None))
    if sqlstate == "23502" or "NOT NULL constraint failed" in text:
        return Violation("not_null", constraint)
    return Violation("other", constraint)


#: What the drivers say when a number does not fit its column (asyncpg; SQLite raises OverflowError).
_OUT_OF_RANGE = ("out of int64 range", "out of range for type", "value out of range")


def out_of_range(exc: BaseException) -> bool:
    """Whether ``exc`` is a database refusing a number too large for its column."""
    if isinstance(exc, OverflowError):
        return True
    if isinstance(exc, DBAPIError):
        orig = exc.orig
        cause = getattr(orig, "__cause__", None)
        sqlstate = getattr(cause, "sqlstate", None) or getattr(orig, "sqlstate", None)
        return sqlstate == "22003" or any(text in str(orig) for text in _OUT_OF_RANGE)
    return False
