"""Change capture and change notifications (docs/operations.md), in application code.

The PostgreSQL original records history and sends ``NOTIFY`` from row triggers. Here
:func:`install_change_capture` listens on one :class:`Database`'s sessions and, in the same
transaction as the write:

* after every ORM flush, turns the inserted, updated and deleted rows of the watched tables into
  :class:`RowChange` records, reading old values from attribute history (no extra SELECT);
* around ORM-enabled bulk ``UPDATE``/``DELETE`` statements on those tables (``session.execute(
  sa.update(models.Execution)...)``), reads the affected rows before and after, and diffs them;
* hands the changes to :func:`attune.db.history.write_history` and :func:`stage_notifications`,
  which stages one ``ChangeNotification`` outbox message per channel event (docs/notifications.md);
  the outbox relay publishes them on ``attune.notifications`` (routing key = channel) after commit.

Execution transitions (``attune.db.repos.transitions``) capture themselves: their single
``UPDATE … RETURNING`` carries :data:`CAPTURED` so the listeners above skip it, and they hand the
change they computed to :func:`record_change` (docs/performance.md).

Not covered: raw SQL text statements, and ORM-enabled bulk INSERT statements.
"""

from __future__ import annotations

import functools
from collections import ChainMap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Result
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction
from sqlalchemy.orm.state import InstanceState
from sqlalchemy.orm.util import identity_key

from attune.db.database import Database
from attune.db.history import HISTORY_SPECS, RowChange, is_distinct, json_value, write_history
from attune.db.models import Base, Enforcement, OutboxMessage
from attune.db.outbox import note_staged
from attune.db.types import utcnow
from attune.domain.enums import InquiryStatus
from attune.messaging.messages import (
    ChangeNotification,
    MessageType,
    change_notification_routing,
    make_envelope,
)

#: Per watched table, the columns whose UPDATE matters (history-tracked or notification-firing).
UPDATE_COLUMNS: Mapping[str, frozenset[str]] = {
    "execution": frozenset(HISTORY_SPECS["execution"].tracked_fields),
    "worker": frozenset(HISTORY_SPECS["worker"].tracked_fields),
    "enforcement": frozenset({"status"}),
    "inquiry": frozenset({"status"}),
    "event": frozenset(),
    "notification": frozenset(),
}

# Large columns a bulk statement's before/after reads skip unless the statement sets them.
_BULK_SKIP: Mapping[str, frozenset[str]] = {
    "execution": frozenset({"config", "result", "secret_params", "env_vars", "workflow_task"}),
    "worker": frozenset({"capabilities", "meta"}),
}

_PRELOADED = "attune_changes_preloaded"
# session.info key: the ``source_service`` of the capture installed on the session's database.
_SOURCE = "attune_changes_source"
#: Execution options of a statement whose caller records its change itself (:func:`record_change`).
_CAPTURED_KEY = "attune_captured"
CAPTURED: Mapping[str, Any] = {_CAPTURED_KEY: True}
# Keeps IN lists well under SQLite's bound-parameter limit.
_CHUNK = 500


@functools.cache
def outbox_insert() -> sa.Insert:
    """The outbox INSERT, built once (several per run: building and keying it each time cost
    more than the executemany)."""
    return sa.insert(OutboxMessage)


@dataclass(frozen=True, slots=True)
class ChangeNotice:
    """One notification: the channel, the entity it is about, and the channel's fields."""

    channel: str
    entity_type: str
    entity_id: int | None
    payload: dict[str, Any]


# --------------------------------------------------------------------------- notification rules


def _fields(row: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
    return {name: json_value(row.get(name)) for name in names}


def _execution_payload(
    entity_id: int, row: Mapping[str, Any], refs: Mapping[int, tuple[str | None, str | None]]
) -> dict[str, Any]:
    # Ids and statuses only: the result is never sent (docs/development.md).
    enforcement = row.get("enforcement")
    rule_ref, trigger_ref = refs.get(enforcement, (None, None)) if enforcement is not None else (None, None)
    return {
        "entity_type": "execution",
        "entity_id": entity_id,
        "id": entity_id,
        "action_id": row.get("action"),
        "action_ref": row.get("action_ref"),
        "status": json_value(row.get("status")),
        "enforcement": enforcement,
        "rule_ref": rule_ref,
        "trigger_ref": trigger_ref,
        "parent": row.get("parent"),
        "created": json_value(row.get("created")),
        "updated": json_value(row.get("updated")),
    }


def _execution_notices(
    change: RowChange, refs: Mapping[int, tuple[str | None, str | None]]
) -> list[ChangeNotice]:
    new = change.new or {}
    entity_id = change.entity_id
    if change.operation == "INSERT":
        return [
            ChangeNotice(
                "execution_created", "execution", entity_id, _execution_payload(entity_id, new, refs)
            )
        ]
    if change.operation != "UPDATE":
        return []
    old_status = (change.old or {}).get("status")
    if not is_distinct(old_status, new.get("status")):
        return []
    payload = _execution_payload(entity_id, new, refs)
    payload["old_status"] = json_value(old_status)
    notices = [ChangeNotice("execution_status_changed", "execution", entity_id, payload)]
    if new.get("is_workflow"):
        workflow = {
            "entity_type": "execution",
            "entity_id": entity_id,
            "id": entity_id,
            **_fields(new, ("action_ref", "status")),
            "old_status": json_value(old_status),
            **_fields(new, ("workflow_def", "parent", "created", "updated")),
        }
        notices.append(ChangeNotice("workflow_execution_status_changed", "execution", entity_id, workflow))
    return notices


_EVENT_FIELDS = ("trigger", "trigger_ref", "source", "source_ref", "rule", "rule_ref", "payload", "created")
_ENFORCEMENT_FIELDS = (
    "rule",
    "rule_ref",
    "trigger_ref",
    "event",
    "status",
    "condition",
    "conditions",
    "config",
    "payload",
    "created",
    "resolved_at",
)


def _head(entity_type: str, entity_id: int) -> dict[str, Any]:
    return {"entity_type": entity_type, "entity_id": entity_id, "id": entity_id}


def _other_notices(change: RowChange) -> list[ChangeNotice]:
    new = change.new or {}
    old = change.old or {}
    entity_id = change.entity_id
    table, operation = change.table, change.operation
    if table == "event" and operation == "INSERT":
        payload = {**_head("event", entity_id), **_fields(new, _EVENT_FIELDS)}
        return [ChangeNotice("event_created", "event", entity_id, payload)]
    if table == "enforcement" and operation == "INSERT":
        payload = {**_head("enforcement", entity_id), **_fields(new, _ENFORCEMENT_FIELDS)}
        return [ChangeNotice("enforcement_created", "enforcement", entity_id, payload)]
    if table == "enforcement" and operation == "UPDATE" and is_distinct(old.get("status"), new.get("status")):
        payload = {**_head("enforcement", entity_id), **_fields(new, _ENFORCEMENT_FIELDS)}
        payload["old_status"] = json_value(old.get("status"))
        return [ChangeNotice("enforcement_status_changed", "enforcement", entity_id, payload)]
    if table == "inquiry" and operation == "INSERT":
        # No ``ttl``: the original trigger read a column that does not exist.
        payload = {**_head("inquiry", entity_id), **_fields(new, ("execution", "status", "created"))}
        return [ChangeNotice("inquiry_created", "inquiry", entity_id, payload)]
    responded = InquiryStatus.RESPONDED.value
    if (
        table == "inquiry"
        and operation == "UPDATE"
        and json_value(new.get("status")) == responded
        and json_value(old.get("status")) != responded
    ):
        payload = {
            **_head("inquiry", entity_id),
            **_fields(new, ("execution", "status", "response", "updated")),
        }
        return [ChangeNotice("inquiry_responded", "inquiry", entity_id, payload)]
    if table == "notification" and operation == "INSERT":
        entity = str(new.get("entity") or "")
        payload = {"id": entity_id, **_fields(new, ("entity_type", "entity", "activity"))}
        # The generic row names its entity as text; an integer id still reaches entity filters.
        target = int(entity) if entity.isdigit() else None
        return [ChangeNotice(str(new.get("channel")), str(new.get("entity_type")), target, payload)]
    return []


def notifications_for(
    change: RowChange, enforcement_refs: Mapping[int, tuple[str | None, str | None]]
) -> list[ChangeNotice]:
    """The notifications a row change fires (pure).

    ``enforcement_refs`` maps enforcement id → ``(rule_ref, trigger_ref)`` for the execution
    payloads; an execution whose enforcement is missing from it gets nulls.
    """
    if change.table == "execution":
        return _execution_notices(change, enforcement_refs)
    return _other_notices(change)


def _needs_enforcement(change: RowChange) -> int | None:
    if change.table != "execution" or change.new is None:
        return None
    enforcement = change.new.get("enforcement")
    return enforcement if isinstance(enforcement, int) else None


def _enforcement_refs(
    session: Session, connection: sa.Connection, ids: set[int]
) -> dict[int, tuple[str | None, str | None]]:
    refs: dict[int, tuple[str | None, str | None]] = {}
    missing: list[int] = []
    for enforcement_id in ids:
        # The executor usually creates the enforcement in the same session: no query then.
        obj = session.identity_map.get(identity_key(Enforcement, enforcement_id))
        loaded = sa.inspect(obj).dict if obj is not None else {}
        if "rule_ref" in loaded and "trigger_ref" in loaded:
            refs[enforcement_id] = (loaded["rule_ref"], loaded["trigger_ref"])
        else:
            missing.append(enforcement_id)
    table = Base.metadata.tables["enforcement"]
    for start in range(0, len(missing), _CHUNK):
        query = sa.select(table.c.id, table.c.rule_ref, table.c.trigger_ref).where(
            table.c.id.in_(missing[start : start + _CHUNK])
        )
        for row in connection.execute(query):
            refs[row.id] = (row.rule_ref, row.trigger_ref)
    return refs


def notification_rows(
    changes: Sequence[RowChange],
    refs: Mapping[int, tuple[str | None, str | None]],
    *,
    source_service: str,
) -> list[dict[str, Any]]:
    """The outbox rows of the notifications ``changes`` fire (``refs`` as in :func:`notifications_for`)."""
    timestamp = utcnow()
    rows: list[dict[str, Any]] = []
    for change in changes:
        for notice in notifications_for(change, refs):
            message = ChangeNotification(
                notification_type=notice.channel,
                entity_type=notice.entity_type,
                entity_id=notice.entity_id,
                payload=notice.payload,
                timestamp=timestamp,
            )
            envelope = make_envelope(MessageType.CHANGE_NOTIFICATION, message, source_service=source_service)
            exchange, routing_key = change_notification_routing(notice.channel)
            rows.append(
                {
                    "exchange": exchange,
                    "routing_key": routing_key,
                    "message_type": str(MessageType.CHANGE_NOTIFICATION),
                    "message_id": envelope.message_id,
                    "body": envelope.model_dump(mode="json"),
                }
            )
    return rows


def stage_notifications(
    session: Session, connection: sa.Connection, changes: Sequence[RowChange], *, source_service: str
) -> int:
    """Stage the notifications of ``changes`` as outbox rows in the current transaction.

    Returns how many messages were staged; marks the session so the relay wakes after commit.
    """
    wanted = {e for e in map(_needs_enforcement, changes) if e is not None}
    refs = _enforcement_refs(session, connection, wanted) if wanted else {}
    rows = notification_rows(changes, refs, source_service=source_service)
    if rows:
        connection.execute(outbox_insert(), rows)
        note_staged(session, rows)
    return len(rows)


def record_change(
    session: Session,
    change: RowChange,
    refs: Mapping[int, tuple[str | None, str | None]],
    messages: Sequence[dict[str, Any]] = (),
) -> None:
    """Record a change its caller computed from its own statement (skipped with :data:`CAPTURED`).

    Writes the history row and stages the notifications, as the listeners would, followed by the
    caller's other outbox ``messages``, all in one INSERT. Without change capture on the session's
    database only ``messages`` are staged.
    """
    connection = session.connection()
    rows: list[dict[str, Any]] = []
    source_service = session.info.get(_SOURCE)
    if source_service is not None:
        write_history(connection, [change])
        rows = notification_rows([change], refs, source_service=source_service)
    rows.extend(messages)
    if rows:
        connection.execute(outbox_insert(), rows)
        note_staged(session, rows)


# --------------------------------------------------------------------------- flush capture


def _table_of(state: InstanceState[Any]) -> str | None:
    name = getattr(state.class_, "__tablename__", None)
    return name if name in UPDATE_COLUMNS else None


def _before_flush(session: Session, _context: UOWTransaction, _instances: object) -> None:
    """Read old values that attribute history cannot give (the attribute was never loaded).

    Rare: with ``expire_on_commit=False`` tracked attributes are normally loaded, so this
    usually issues no query at all.
    """
    session.info.pop(_PRELOADED, None)
    wanted: dict[str, dict[int, set[str]]] = {}
    for obj in session.dirty:
        state: InstanceState[Any] = sa.inspect(obj)
        table = _table_of(state)
        if table is None or state.identity is None:
            continue
        for key in UPDATE_COLUMNS[table]:
            history = state.attrs[key].history
            if history.added and not history.deleted:
                wanted.setdefault(table, {}).setdefault(state.identity[0], set()).add(key)
    if not wanted:
        return
    preloaded: dict[tuple[str, int], dict[str, Any]] = {}
    connection = session.connection()
    for table_name, by_id in wanted.items():
        source = Base.metadata.tables[table_name]
        keys = sorted(set().union(*by_id.values()))
        ids = list(by_id)
        for start in range(0, len(ids), _CHUNK):
            query = sa.select(source.c.id, *(source.c[k] for k in keys)).where(
                source.c.id.in_(ids[start : start + _CHUNK])
            )
            for row in connection.execute(query):
                preloaded[(table_name, row.id)] = dict(row._mapping)
    session.info[_PRELOADED] = preloaded


def _flush_changes(session: Session) -> list[RowChange]:
    preloaded: dict[tuple[str, int], dict[str, Any]] = session.info.pop(_PRELOADED, None) or {}
    changes: list[RowChange] = []
    for obj in session.new:
        state: InstanceState[Any] = sa.inspect(obj)
        table = _table_of(state)
        if table is not None:
            changes.append(RowChange(table, "INSERT", state.dict["id"], None, state.dict))
    for obj in session.dirty:
        state = sa.inspect(obj)
        table = _table_of(state)
        if table is None or state.identity is None or not UPDATE_COLUMNS[table]:
            continue
        entity_id = state.identity[0]
        old: dict[str, Any] = {}
        for key in UPDATE_COLUMNS[table]:
            history = state.attrs[key].history
            if history.deleted:
                old[key] = history.deleted[0]
            elif history.added:
                old[key] = preloaded.get((table, entity_id), {}).get(key)
        current = state.dict
        if any(is_distinct(value, current.get(key)) for key, value in old.items()):
            changes.append(RowChange(table, "UPDATE", entity_id, ChainMap(old, current), current))
    for obj in session.deleted:
        state = sa.inspect(obj)
        table = _table_of(state)
        if table is not None and state.identity is not None:
            changes.append(RowChange(table, "DELETE", state.identity[0], state.dict, None))
    return changes


# --------------------------------------------------------------------------- bulk statements


def _column_name(key: Any) -> str | None:
    if isinstance(key, str):
        return key
    name = getattr(key, "key", None)
    return name if isinstance(name, str) else None


def _touched_columns(statement: Any, parameters: Any) -> frozenset[str] | None:
    """The columns an UPDATE sets, or ``None`` when they cannot be told (assume all)."""
    names: set[str] = set()
    # ``_values``/``_ordered_values`` hold the ``.values()`` clause; there is no public accessor.
    keys = [*(getattr(statement, "_values", None) or {})]
    keys += [key for key, _value in (getattr(statement, "_ordered_values", None) or ())]
    for key in keys:
        name = _column_name(key)
        if name is None:
            return None
        names.add(name)
    if isinstance(parameters, Mapping):
        names.update(str(k) for k in parameters)
    elif isinstance(parameters, Sequence):
        for params in parameters:
            names.update(str(k) for k in params)
    return frozenset(names) or None


def _bulk_columns(table: sa.Table, touched: frozenset[str] | None) -> list[sa.Column[Any]]:
    if touched is None:
        touched = frozenset(table.c.keys())
    skip = _BULK_SKIP.get(table.name, frozenset()) - touched
    return [column for column in table.c if column.key not in skip]


def _read_rows(
    connection: sa.Connection, columns: list[sa.Column[Any]], table: sa.Table, ids: list[Any]
) -> dict[int, dict[str, Any]]:
    rows: dict[int, dict[str, Any]] = {}
    for start in range(0, len(ids), _CHUNK):
        query = sa.select(*columns).where(table.c.id.in_(ids[start : start + _CHUNK]))
        for row in connection.execute(query):
            rows[row.id] = dict(row._mapping)
    return rows


def _bulk_changes(
    table: sa.Table,
    operation: str,
    before: dict[int, dict[str, Any]],
    after: dict[int, dict[str, Any]],
) -> list[RowChange]:
    if operation == "DELETE":
        return [RowChange(table.name, "DELETE", entity_id, row, None) for entity_id, row in before.items()]
    watched = UPDATE_COLUMNS[table.name]
    changes: list[RowChange] = []
    for entity_id, old in before.items():
        new = after.get(entity_id)
        if new is not None and any(is_distinct(old.get(k), new.get(k)) for k in watched if k in old):
            changes.append(RowChange(table.name, "UPDATE", entity_id, old, new))
    return changes


# --------------------------------------------------------------------------- installation


def install_change_capture(db: Database, *, source_service: str = "attune") -> None:
    """Record history and stage change notifications for every write through ``db``.

    Installs session listeners on this database instance only; call once per ``Database``.
    ``source_service`` goes in the notification envelopes' headers.
    """

    def dispatch(session: Session, changes: list[RowChange]) -> None:
        if not changes:
            return
        connection = session.connection()
        write_history(connection, changes)
        stage_notifications(session, connection, changes, source_service=source_service)

    def after_flush(session: Session, _context: UOWTransaction) -> None:
        dispatch(session, _flush_changes(session))

    def after_begin(session: Session, _transaction: object, _connection: object) -> None:
        session.info[_SOURCE] = source_service

    def do_orm_execute(orm_state: ORMExecuteState) -> Result[Any] | None:
        if not (orm_state.is_update or orm_state.is_delete):
            return None
        if orm_state.execution_options.get(_CAPTURED_KEY):
            return None
        statement: Any = orm_state.statement
        name = getattr(getattr(statement, "table", None), "name", None)
        if not isinstance(name, str) or name not in UPDATE_COLUMNS:
            return None
        table = Base.metadata.tables[name]
        parameters = orm_state.parameters
        if orm_state.is_delete:
            if name not in HISTORY_SPECS:
                return None
            operation, touched = "DELETE", frozenset[str]()
        else:
            operation, touched_or_none = "UPDATE", _touched_columns(statement, parameters)
            if touched_or_none is not None and not touched_or_none & UPDATE_COLUMNS[name]:
                return None
            touched = touched_or_none if touched_or_none is not None else frozenset(table.c.keys())
        session = orm_state.session
        connection = session.connection()
        columns = _bulk_columns(table, touched)
        if statement.whereclause is None and isinstance(parameters, Sequence) and parameters:
            # ORM bulk UPDATE by primary key: one parameter set per row.
            ids = [params.get("id") for params in parameters]
            before = _read_rows(connection, columns, table, ids)
        else:
            query = sa.select(*columns)
            if statement.whereclause is not None:
                query = query.where(statement.whereclause)
            if connection.dialect.name == "postgresql":
                # Lock the rows so the "before" image is what the UPDATE actually changes.
                query = query.with_for_update(of=table)
            bind = dict(parameters) if isinstance(parameters, Mapping) and parameters else None
            before = {row.id: dict(row._mapping) for row in connection.execute(query, bind)}
        result = orm_state.invoke_statement()
        if before:
            after = _read_rows(connection, columns, table, list(before)) if operation == "UPDATE" else {}
            dispatch(session, _bulk_changes(table, operation, before, after))
        return result

    db.add_session_listener("after_begin", after_begin)
    db.add_session_listener("before_flush", _before_flush)
    db.add_session_listener("after_flush", after_flush)
    db.add_session_listener("do_orm_execute", do_orm_execute)
