"""Execution transitions as single statements (docs/performance.md).

A transition is one compare-and-set ``UPDATE execution … WHERE id = … AND status IN (…)
RETURNING …``. Its change capture (history row, change notifications, docs/operations.md) is
computed from that statement: the new values are the returned row and the values set, the old ones
are what the compare-and-set pins down (the one ``from`` status, a NULL ``result``) or what the
caller read already; only old values nobody knows cost one locked pre-read. The enforcement's
``rule_ref``/``trigger_ref`` that execution notifications carry come back in the same statement.
The caller's own messages are staged with the notifications, in one outbox INSERT.
"""

from __future__ import annotations

import functools
from collections import ChainMap
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from attune.db.changes import CAPTURED, record_change
from attune.db.history import EXECUTION_HISTORY, RowChange
from attune.db.models import Enforcement, Execution
from attune.db.outbox import outbox_row
from attune.db.repos import locking
from attune.messaging.messages import MessageType

#: ``on_worker=ANY_WORKER``: the execution's worker does not matter.
ANY_WORKER = -1

#: A message to stage with a transition: type, payload, and routing (None: the type's default).
Message = tuple[MessageType, dict[str, Any], tuple[str, str] | None]
#: Builds a transition's messages from its new row (``id``, ``action_ref``, …).
Messages = Callable[[Mapping[str, Any]], Sequence[Message]]

_TRACKED = frozenset(EXECUTION_HISTORY.tracked_fields)
_TABLE = cast(sa.Table, Execution.__table__)
# What history and the execution notifications read besides the values set (docs/notifications.md).
_RETURNED: tuple[Any, ...] = (
    Execution.id,
    Execution.action,
    Execution.action_ref,
    Execution.status,
    Execution.enforcement,
    Execution.parent,
    Execution.is_workflow,
    Execution.workflow_def,
    Execution.created,
    Execution.updated,
)


#: Bound parameter names of the cached statements (a name of its own per set column: SQLAlchemy
#: reserves the column names for its own SET parameters).
_ID, _WORKER, _SET = "t_id", "t_worker", "t_set_"


def _enforcement_ref(column: Any) -> sa.Label[Any]:
    query = sa.select(column).where(Enforcement.id == Execution.enforcement)
    return query.scalar_subquery().label(column.key)


_REFS = (_enforcement_ref(Enforcement.rule_ref), _enforcement_ref(Enforcement.trigger_ref))


def _worker_mode(on_worker: int | None) -> str:
    return "none" if on_worker is None else "any" if on_worker == ANY_WORKER else "one"


def _statement_conditions(
    statuses: tuple[str, ...], worker_mode: str, result_is_null: bool
) -> list[sa.ColumnElement[bool]]:
    """The compare-and-set's conditions, the execution and worker ids as bound parameters
    (:func:`_parameters` gives their values)."""
    conditions: list[sa.ColumnElement[bool]] = [
        Execution.id == sa.bindparam(_ID),
        Execution.status.in_(list(statuses)),
    ]
    if worker_mode == "none":
        conditions.append(Execution.worker.is_(None))
    elif worker_mode == "one":
        conditions.append(Execution.worker == sa.bindparam(_WORKER))
    if result_is_null:
        conditions.append(Execution.result.is_(None))
    return conditions


def _set_values(names: tuple[str, ...]) -> dict[str, Any]:
    return {name: sa.bindparam(_SET + name, type_=_TABLE.c[name].type) for name in names}


# The statements are built once per shape and reused: building one and computing its cache key
# cost ≈ 0.4 ms of CPU per transition, two to three per run (docs/performance.md, "Cheaper
# process start and finish on the worker"); a reused statement keeps its memoised cache key.
@functools.lru_cache(maxsize=128)
def _update(
    statuses: tuple[str, ...], worker_mode: str, result_is_null: bool, names: tuple[str, ...]
) -> sa.Update:
    conditions = _statement_conditions(statuses, worker_mode, result_is_null)
    return sa.update(_TABLE).where(*conditions).values(_set_values(names)).returning(*_RETURNED, *_REFS)


@functools.lru_cache(maxsize=32)
def _update_loading(statuses: tuple[str, ...], worker_mode: str, names: tuple[str, ...]) -> sa.Update:
    conditions = _statement_conditions(statuses, worker_mode, False)
    return (
        sa.update(Execution)
        .where(*conditions)
        .values(_set_values(names))
        .returning(Execution, *_REFS)
        .execution_options(synchronize_session=False, populate_existing=True, **CAPTURED)
    )


@functools.lru_cache(maxsize=64)
def _old_read(
    statuses: tuple[str, ...], worker_mode: str, result_is_null: bool, names: tuple[str, ...], locked: bool
) -> sa.Select[Any]:
    """The read of the old values of ``names`` in the row the UPDATE of this shape would match,
    locked for the transaction when ``locked`` (:func:`attune.db.repos.locking.row_locks`)."""
    conditions = _statement_conditions(statuses, worker_mode, result_is_null)
    query = sa.select(*(_TABLE.c[name] for name in names)).where(*conditions)
    return query.with_for_update() if locked else query


def _parameters(execution_id: int, on_worker: int | None, values: Mapping[str, Any]) -> dict[str, Any]:
    parameters = {_SET + name: value for name, value in values.items()}
    parameters[_ID] = execution_id
    if on_worker is not None and on_worker != ANY_WORKER:
        parameters[_WORKER] = on_worker
    return parameters


async def _old_values(
    session: AsyncSession,
    shape: tuple[tuple[str, ...], str, bool],
    parameters: Mapping[str, Any],
    known: dict[str, Any],
    values: Mapping[str, Any],
) -> dict[str, Any] | None:
    """The old values of the tracked columns ``values`` sets: ``known``, plus one locked read of
    the others (the row the compare-and-set of ``shape`` matches with ``parameters``); None when
    no row matches (then nothing is updated)."""
    missing = tuple(name for name in values if name in _TRACKED and name not in known)
    if not missing:
        return known
    query = _old_read(*shape, missing, locking.row_locks(session))
    row = (await session.execute(query, dict(parameters))).first()
    if row is None:
        return None
    return {**known, **row._mapping}


def message_row(message: Message, *, source_service: str) -> dict[str, Any]:
    """The outbox row of ``message`` (as :func:`attune.db.outbox.enqueue` writes it)."""
    message_type, payload, routing = message
    return outbox_row(message_type, payload, source_service=source_service, routing=routing)[1]


async def _record(
    session: AsyncSession,
    old: Mapping[str, Any],
    new: dict[str, Any],
    messages: Messages | None,
    source_service: str,
) -> None:
    refs: dict[int, tuple[str | None, str | None]] = {}
    enforcement = new.get("enforcement")
    if isinstance(enforcement, int):
        refs[enforcement] = (new.get("rule_ref"), new.get("trigger_ref"))
    # Unset old values read as the new ones: only what the statement set can differ.
    change = RowChange("execution", "UPDATE", int(new["id"]), ChainMap(dict(old), new), new)
    rows = [message_row(m, source_service=source_service) for m in messages(new)] if messages else []
    await session.run_sync(record_change, change, refs, rows)


def _known(
    from_statuses: tuple[str, ...], old: Mapping[str, Any] | None, result_is_null: bool
) -> dict[str, Any]:
    """The old values the compare-and-set pins down, with those the caller read."""
    known = dict(old or {})
    if len(from_statuses) == 1:
        known.setdefault("status", from_statuses[0])
    if result_is_null:
        known.setdefault("result", None)
    return known


async def transition(
    session: AsyncSession,
    execution_id: int,
    *,
    from_statuses: Collection[str],
    on_worker: int | None = ANY_WORKER,
    old: Mapping[str, Any] | None = None,
    result_is_null: bool = False,
    messages: Messages | None = None,
    source_service: str = "attune",
    **values: Any,
) -> dict[str, Any] | None:
    """``UPDATE execution SET values WHERE id = … AND status IN from_statuses`` (and, unless
    ``on_worker`` is :data:`ANY_WORKER`, ``AND worker = on_worker`` / ``IS NULL``; with
    ``result_is_null``, ``AND result IS NULL``), recorded and announced in the same transaction.

    ``old`` holds old values of set columns the caller knows (it read them under a lock).
    Returns the new row (the columns history and notifications need, and ``values``), or None when
    another actor moved the execution first (then nothing is written or staged). A loaded
    ``Execution`` instance is left alone (the caller sets its attributes).
    """
    statuses = tuple(from_statuses)
    worker_mode = _worker_mode(on_worker)
    parameters = _parameters(execution_id, on_worker, values)
    known = _known(statuses, old, result_is_null)
    before = await _old_values(session, (statuses, worker_mode, result_is_null), parameters, known, values)
    if before is None:
        return None
    # A Core UPDATE on the table, run on the session's connection: the ORM's bulk-update path
    # (entity resolution, session synchronisation, the execute events) cost ≈ 4 % of a W2 run's
    # server CPU for nothing here — the change capture is computed below, and a loaded instance
    # is left alone either way.
    statement = _update(statuses, worker_mode, result_is_null, tuple(values))
    await session.flush()  # what session.execute would autoflush (a pending enforcement the refs read)
    connection = await session.connection()
    row = (await connection.execute(statement, parameters)).first()
    if row is None:
        return None
    new = {**values, **row._mapping}
    await _record(session, before, new, messages, source_service)
    return new


async def transition_loading(
    session: AsyncSession,
    execution_id: int,
    *,
    from_statuses: Collection[str],
    on_worker: int | None = ANY_WORKER,
    messages: Messages | None = None,
    source_service: str = "attune",
    **values: Any,
) -> Execution | None:
    """:func:`transition` that returns the whole execution as the session's instance (refreshed),
    for a caller that goes on with it (the worker's claim). Only ``status`` may be a tracked
    column in ``values``, and ``from_statuses`` holds one status."""
    statuses = tuple(from_statuses)
    known = _known(statuses, None, False)
    if any(name in _TRACKED and name not in known for name in values):
        raise ValueError("transition_loading cannot know the old values of tracked columns")
    statement = _update_loading(statuses, _worker_mode(on_worker), tuple(values))
    row = (await session.execute(statement, _parameters(execution_id, on_worker, values))).first()
    if row is None:
        return None
    execution: Execution = row[0]
    state: dict[str, Any] = sa.inspect(execution).dict
    new = {**state, "rule_ref": row.rule_ref, "trigger_ref": row.trigger_ref}
    await _record(session, known, new, messages, source_service)
    return execution
