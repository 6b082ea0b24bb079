"""Reading the change history (docs/development.md "query contract").

The rows themselves are written by :mod:`attune.db.history` in the same transaction as the change;
this module only selects them: by entity, ref, operation, changed field and time range, newest first.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from attune.db.models import ExecutionHistory, WorkerHistory

HistoryModel = type[ExecutionHistory] | type[WorkerHistory]

#: History tables by the entity type the API names them with.
HISTORY_MODELS: Mapping[str, HistoryModel] = {"execution": ExecutionHistory, "worker": WorkerHistory}


def dialect_of(session: AsyncSession) -> str:
    """The SQL dialect name (``sqlite`` or ``postgresql``) the session talks to."""
    return session.get_bind().dialect.name


def has_changed_field(column: Any, name: str, dialect: str) -> sa.ColumnElement[bool]:
    """``name`` ∈ ``changed_fields``, per dialect (the column is TEXT[] on PostgreSQL, JSON on SQLite).

    SQLite expands the JSON list with ``json_each`` rather than matching its text with ``LIKE``,
    so a field name containing quotes or wildcard characters cannot match the wrong row.
    """
    if dialect == "postgresql":
        return sa.type_coerce(column, postgresql.ARRAY(sa.Text())).any_() == name
    items = sa.func.json_each(column).table_valued("value")
    return sa.exists(sa.select(sa.literal(1)).select_from(items).where(items.c.value == name))


def list_query(
    session: AsyncSession,
    model: HistoryModel,
    *,
    entity_id: int | None = None,
    entity_ref: str | None = None,
    operation: str | None = None,
    changed_field: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> sa.Select[Any]:
    """History rows matching every given filter, newest first (``id`` breaks ties in ``time``).

    ``operation`` is matched case-insensitively; ``since`` and ``until`` are both inclusive. The
    session only tells which database the query is for (see :func:`has_changed_field`).
    """
    query = sa.select(model)
    if entity_id is not None:
        query = query.where(model.entity_id == entity_id)
    if entity_ref is not None:
        query = query.where(model.entity_ref == entity_ref)
    if operation is not None:
        query = query.where(model.operation == operation.upper())
    if changed_field is not None:
        query = query.where(has_changed_field(model.changed_fields, changed_field, dialect_of(session)))
    if since is not None:
        query = query.where(model.time >= since)
    if until is not None:
        query = query.where(model.time <= until)
    return query.order_by(model.time.desc(), model.id.desc())
