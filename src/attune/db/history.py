"""Change history of ``execution`` and ``worker`` rows (docs/development.md), in application code.

The PostgreSQL original uses AFTER row triggers; here the change capture (``attune.db.changes``)
hands every written row to :func:`write_history` as a :class:`RowChange`, and the pure rules below
decide which history row, if any, it produces:

* INSERT: ``new_values`` = the listed insert fields, ``changed_fields`` = ``[]``;
* UPDATE: only when a tracked field is distinct (NULL-safe); ``changed_fields`` in the table's
  order, ``old_values``/``new_values`` hold only those fields, ``execution.result`` as a digest;
* DELETE: ``changed_fields`` = ``[]`` and both value columns NULL.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal

import sqlalchemy as sa

from attune.db.models import ExecutionHistory, WorkerHistory

Operation = Literal["INSERT", "UPDATE", "DELETE"]


@dataclass(frozen=True, slots=True)
class RowChange:
    """One row written to a watched table.

    ``old`` and ``new`` map column names to values: ``old`` is ``None`` for an INSERT and ``new``
    is ``None`` for a DELETE. Either may be partial; a missing column reads as ``None``.
    """

    table: str
    operation: Operation
    entity_id: int
    old: Mapping[str, Any] | None
    new: Mapping[str, Any] | None


@dataclass(frozen=True, slots=True)
class HistorySpec:
    """What one source table records (a row of the table in docs/operations.md)."""

    table: str
    history_table: sa.Table
    ref_field: str
    insert_fields: tuple[str, ...]
    tracked_fields: tuple[str, ...]
    digest_fields: frozenset[str]


EXECUTION_HISTORY = HistorySpec(
    table="execution",
    history_table=ExecutionHistory.__table__,  # type: ignore[arg-type]
    ref_field="action_ref",
    insert_fields=("status", "action_ref", "executor", "parent", "enforcement"),
    tracked_fields=("status", "result", "executor", "workflow_task", "env_vars"),
    digest_fields=frozenset({"result"}),
)

WORKER_HISTORY = HistorySpec(
    table="worker",
    history_table=WorkerHistory.__table__,  # type: ignore[arg-type]
    ref_field="name",
    insert_fields=("name", "worker_type", "worker_role", "status", "host", "port"),
    # last_heartbeat is deliberately absent: a heartbeat-only update writes no row.
    tracked_fields=("name", "status", "capabilities", "meta", "host", "port"),
    digest_fields=frozenset(),
)

#: History specs by source table name.
HISTORY_SPECS: Mapping[str, HistorySpec] = {spec.table: spec for spec in (EXECUTION_HISTORY, WORKER_HISTORY)}


def json_value(value: Any) -> Any:
    """``value`` made JSON-serialisable: datetimes as RFC 3339 UTC strings, enums as their value."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    return value


def canonical_json(value: Any) -> str:
    """The canonical JSON text of a value: sorted keys, no insignificant whitespace, raw UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=json_value)


def json_type(value: Any) -> str:
    """The JSON type name of a value: object, array, string, number, boolean or null."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    return "object"


def digest(value: Any) -> dict[str, Any] | None:
    """The digest summary of a large JSON value, or ``None`` for NULL.

    ``{"digest": "md5:<hex>", "size": <bytes>, "type": <json type>}`` over the canonical JSON text;
    for change detection only, not security.
    """
    if value is None:
        return None
    text = canonical_json(value).encode()
    return {
        "digest": "md5:" + hashlib.md5(text, usedforsecurity=False).hexdigest(),
        "size": len(text),
        "type": json_type(value),
    }


def is_distinct(old: Any, new: Any) -> bool:
    """NULL-safe "IS DISTINCT FROM": compares JSON texts, so JSON null equals SQL NULL, and
    ``1``/``true`` or ``"running"``/``ExecutionStatus.RUNNING`` compare as JSON does."""
    if old is new:
        return False
    # The common cases without encoding (bulk workflow children diff five fields each): only
    # None encodes as null; two strings (str enums included) encode alike exactly when equal.
    if old is None or new is None:
        return True
    if isinstance(old, str) and isinstance(new, str):
        return old != new
    return canonical_json(old) != canonical_json(new)


def recorded_value(spec: HistorySpec, field: str, value: Any) -> Any:
    """The value stored in old/new_values for ``field`` (a digest for large columns)."""
    if field in spec.digest_fields:
        return digest(value)
    return json_value(value)


def diff(
    spec: HistorySpec, old: Mapping[str, Any], new: Mapping[str, Any]
) -> tuple[list[str], dict[str, Any], dict[str, Any]] | None:
    """``(changed_fields, old_values, new_values)`` of an UPDATE, or ``None`` when nothing tracked changed."""
    changed = [f for f in spec.tracked_fields if is_distinct(old.get(f), new.get(f))]
    if not changed:
        return None
    return (
        changed,
        {f: recorded_value(spec, f, old.get(f)) for f in changed},
        {f: recorded_value(spec, f, new.get(f)) for f in changed},
    )


def history_row(change: RowChange) -> dict[str, Any] | None:
    """The history-table row a change records (column name → value), or ``None`` for no row."""
    spec = HISTORY_SPECS.get(change.table)
    if spec is None:
        return None
    row: dict[str, Any] = {"operation": change.operation, "entity_id": change.entity_id, "changed_fields": []}
    if change.operation == "INSERT":
        new = change.new or {}
        row["entity_ref"] = new.get(spec.ref_field)
        row["old_values"] = None
        row["new_values"] = {f: json_value(new.get(f)) for f in spec.insert_fields}
    elif change.operation == "UPDATE":
        new = change.new or {}
        found = diff(spec, change.old or {}, new)
        if found is None:
            return None
        row["entity_ref"] = new.get(spec.ref_field)
        row["changed_fields"], row["old_values"], row["new_values"] = found
    else:
        row["entity_ref"] = (change.old or {}).get(spec.ref_field)
        row["old_values"] = None
        row["new_values"] = None
    return row


@functools.cache
def _history_insert(table: str) -> sa.Insert:
    # Built once per table: several history rows per run, and building and keying the INSERT
    # each time cost more than the executemany.
    return sa.insert(HISTORY_SPECS[table].history_table)


def write_history(connection: sa.Connection, changes: Iterable[RowChange]) -> int:
    """Insert the history rows of ``changes`` on ``connection`` (one executemany per table).

    Runs inside the caller's transaction, so history commits or rolls back with the data.
    Returns the number of rows written.
    """
    # A None value column is left out of the INSERT so it is stored as SQL NULL, not JSON null;
    # rows are grouped by their column set because an executemany needs uniform keys.
    batches: dict[tuple[str, tuple[str, ...]], list[dict[str, Any]]] = {}
    for change in changes:
        row = history_row(change)
        if row is None:
            continue
        for key in ("old_values", "new_values"):
            if row[key] is None:
                del row[key]
        batches.setdefault((change.table, tuple(row)), []).append(row)
    for (table, _keys), rows in batches.items():
        connection.execute(_history_insert(table), rows)
    return sum(len(rows) for rows in batches.values())
