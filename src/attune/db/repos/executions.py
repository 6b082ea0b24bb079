"""The execution aggregate's repository (docs/development.md): every query and write of ``execution`` rows.

Creating executions (:func:`request_execution`) is the one path used by manual runs, rules,
re-runs, retries and workflow tasks: it applies parameter defaults, validates against the action
schema, moves secret parameters out of ``config`` into the encrypted ``secret_params`` column,
inserts the row and stages ``ExecutionRequested`` in the same transaction.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from attune.db.models import Action, Enforcement, Execution, Worker
from attune.db.outbox import enqueue
from attune.db.repos import by_pk, locking, transitions
from attune.db.repos.idempotent import add_once
from attune.db.types import utcnow
from attune.domain.crypto import SecretBox
from attune.domain.enums import ExecutionStatus
from attune.domain.params import apply_defaults, secret_names, validate_params
from attune.errors import Conflict
from attune.messaging.messages import MessageType

#: ``on_worker=ANY_WORKER`` in :func:`move`: the execution's worker does not matter.
ANY_WORKER = transitions.ANY_WORKER
#: Rows fetched per round trip while scanning results for ``result_contains``.
SCAN_BATCH = 500
SECRET_MASK = "********"
_PLAIN_PREFIX = "plain:"


@dataclass(frozen=True)
class ExecutionFilters:
    """The ``GET /executions`` filters (docs/api.md), all combined with AND."""

    status: str | None = None
    enforcement: int | None = None
    action_ref: str | None = None
    pack_name: str | None = None
    rule_ref: str | None = None
    trigger_ref: str | None = None
    executor: int | None = None
    parent: int | None = None
    top_level_only: bool = False
    #: Every attempt of a retry chain: the first execution and its retries and re-runs.
    original_execution: int | None = None


async def get(session: AsyncSession, execution_id: int) -> Execution | None:
    """The execution with ``execution_id``, or None."""
    return await session.get(Execution, execution_id)


async def action_by_ref(session: AsyncSession, ref: str) -> Action | None:
    """The action with ``ref``, or None."""
    return (await session.execute(sa.select(Action).where(Action.ref == ref))).scalar_one_or_none()


async def param_schema_of(session: AsyncSession, execution: Execution) -> Any:
    """The ``param_schema`` of the execution's action (by id, then by ref); None when it is gone."""
    action = await by_pk.get(session, Action, execution.action) if execution.action is not None else None
    if action is None:
        action = await action_by_ref(session, execution.action_ref)
    return action.param_schema if action is not None else None


def _newest_first(query: sa.Select[Execution]) -> sa.Select[Execution]:
    return query.order_by(Execution.created.desc(), Execution.id.desc())


def list_query(filters: ExecutionFilters) -> sa.Select[Execution]:
    """Executions matching ``filters``, newest first. ``status`` wins over ``enforcement``."""
    query = sa.select(Execution)
    if filters.status is not None:
        query = query.where(Execution.status == filters.status)
    elif filters.enforcement is not None:
        query = query.where(Execution.enforcement == filters.enforcement)
    if filters.action_ref is not None:
        query = query.where(Execution.action_ref == filters.action_ref)
    if filters.pack_name is not None:
        query = query.where(Execution.action_ref.startswith(f"{filters.pack_name}.", autoescape=True))
    if filters.rule_ref is not None or filters.trigger_ref is not None:
        matching = sa.select(Enforcement.id)
        if filters.rule_ref is not None:
            matching = matching.where(Enforcement.rule_ref == filters.rule_ref)
        if filters.trigger_ref is not None:
            matching = matching.where(Enforcement.trigger_ref == filters.trigger_ref)
        query = query.where(Execution.enforcement.in_(matching))
    if filters.executor is not None:
        query = query.where(Execution.executor == filters.executor)
    if filters.parent is not None:
        query = query.where(Execution.parent == filters.parent)
    if filters.original_execution is not None:
        root = filters.original_execution
        query = query.where(sa.or_(Execution.id == root, Execution.original_execution == root))
    if filters.top_level_only:
        query = query.where(Execution.parent.is_(None))
    return _newest_first(query)


def by_status_query(status: str) -> sa.Select[Execution]:
    """Executions in ``status``, newest first."""
    return _newest_first(sa.select(Execution).where(Execution.status == status))


def by_enforcement_query(enforcement_id: int) -> sa.Select[Execution]:
    """Executions spawned by one enforcement, newest first."""
    return _newest_first(sa.select(Execution).where(Execution.enforcement == enforcement_id))


def serialized_result(result: Any) -> str:
    """The canonical text ``result_contains`` searches: compact JSON with sorted keys.

    Computed from the decoded value, not the stored text, because the two databases store JSON
    differently (JSONB reorders keys and spaces its output; SQLite keeps the text as written), so
    the same search must give the same answer on both.
    """
    return json.dumps(result, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


async def page_with_result_containing(
    session: AsyncSession, query: sa.Select[Execution], needle: str, *, offset: int, limit: int
) -> tuple[Sequence[Execution], int]:
    """One page of ``query`` restricted to rows whose serialised ``result`` contains ``needle``
    (case-insensitive), and the total number of such rows.

    Scans the filtered candidates in order, keeping only matching ids, then loads the one page.
    Executions without a result never match.
    """
    wanted = needle.lower()
    scan = query.with_only_columns(Execution.id, Execution.result).execution_options(yield_per=SCAN_BATCH)
    matched: list[int] = []
    async for execution_id, result in await session.stream(scan):
        if result is not None and wanted in serialized_result(result).lower():
            matched.append(execution_id)
    page_ids = matched[offset : offset + limit] if limit > 0 else []
    if not page_ids:
        return [], len(matched)
    rows = (await session.execute(sa.select(Execution).where(Execution.id.in_(page_ids)))).scalars().all()
    position = {execution_id: index for index, execution_id in enumerate(page_ids)}
    return sorted(rows, key=lambda row: position[row.id]), len(matched)


async def enforcement_refs(session: AsyncSession, ids: set[int]) -> dict[int, tuple[str, str]]:
    """``{enforcement id: (rule_ref, trigger_ref)}`` for the given enforcement ids."""
    if not ids:
        return {}
    query = sa.select(Enforcement.id, Enforcement.rule_ref, Enforcement.trigger_ref).where(
        Enforcement.id.in_(ids)
    )
    return {row.id: (row.rule_ref, row.trigger_ref) for row in await session.execute(query)}


async def count_by_status(session: AsyncSession) -> dict[str, int]:
    """``{status: count}`` over every execution."""
    query = sa.select(Execution.status, sa.func.count()).group_by(Execution.status)
    return {status: int(count) for status, count in await session.execute(query)}


async def add(session: AsyncSession, execution: Execution) -> Execution:
    """Insert ``execution`` and flush so its id and timestamps are set."""
    session.add(execution)
    await session.flush()
    return execution


async def action_of(session: AsyncSession, execution: Execution) -> Action | None:
    """The action row an execution runs (None when it was deleted)."""
    if execution.action is None:
        return None
    return await by_pk.get(session, Action, execution.action)


async def lineage(session: AsyncSession, execution_id: int, *, limit: int = 1000) -> set[int]:
    """``execution_id`` and the ids of all its ancestors (``parent`` links)."""
    seen: set[int] = set()
    current: int | None = execution_id
    while current is not None and current not in seen and len(seen) < limit:
        seen.add(current)
        current = await session.scalar(sa.select(Execution.parent).where(Execution.id == current))
    return seen


def executor_of(execution_column: Any) -> sa.ScalarSelect[Any]:
    """A correlated subquery: the executor of the execution ``execution_column`` names."""
    return sa.select(Execution.executor).where(Execution.id == execution_column).scalar_subquery()


def action_ref_of(execution_column: Any) -> sa.ScalarSelect[Any]:
    """A correlated subquery: the action ref of the execution ``execution_column`` names."""
    return sa.select(Execution.action_ref).where(Execution.id == execution_column).scalar_subquery()


async def of_event(session: AsyncSession, event_id: int) -> Sequence[Execution]:
    """The executions an event caused directly (through its enforcements), oldest first."""
    return (await session.scalars(_of_event_query(), {"event_id": event_id})).all()


@functools.cache
def _of_event_query() -> sa.Select[Execution]:
    # Built once: statements on a run's path cost more to build (and key) than to run.
    return (
        sa.select(Execution)
        .join(Enforcement, Execution.enforcement == Enforcement.id)
        .where(Enforcement.event == sa.bindparam("event_id"))
        .order_by(Execution.id)
    )


async def statuses(session: AsyncSession, ids: Sequence[int]) -> dict[int, str]:
    """``{id: status}`` of the given executions (missing ones are left out)."""
    if not ids:
        return {}
    rows = await session.execute(sa.select(Execution.id, Execution.status).where(Execution.id.in_(ids)))
    return {row.id: row.status for row in rows}


# --------------------------------------------------------------------------- creating executions


def flat_schema(schema: Any) -> dict[str, Any] | None:
    return schema if isinstance(schema, dict) else None


def split_secrets(params: dict[str, Any], schema: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(params with secret values masked, the secret values) per the schema's ``secret: true``."""
    names = secret_names(flat_schema(schema))
    secrets = {name: params[name] for name in names if name in params}
    public = {key: (SECRET_MASK if key in secrets else value) for key, value in params.items()}
    return public, secrets


def seal_secrets(secrets: dict[str, Any], box: SecretBox | None) -> str | None:
    if not secrets:
        return None
    text = json.dumps(secrets, separators=(",", ":"))
    # Without a master key there is nothing to encrypt with; keep it out of ``config`` anyway.
    return box.encrypt(text) if box is not None else _PLAIN_PREFIX + text


def reveal_secrets(sealed: str | None, box: SecretBox | None) -> dict[str, Any]:
    """Decrypt ``execution.secret_params`` (raises CryptoError when the key is wrong)."""
    if not sealed:
        return {}
    if sealed.startswith(_PLAIN_PREFIX):
        value = json.loads(sealed[len(_PLAIN_PREFIX) :])
    else:
        if box is None:
            raise ValueError("secret parameters are encrypted but no encryption key is configured")
        value = json.loads(box.decrypt(sealed))
    return value if isinstance(value, dict) else {}


def full_parameters(execution: Execution, box: SecretBox | None) -> dict[str, Any]:
    """The parameters an action receives: ``config`` with the secret values put back."""
    return parameters_from(execution.config, execution.secret_params, box)


def parameters_from(config: Any, secret_params: Any, box: SecretBox | None) -> dict[str, Any]:
    """:func:`full_parameters` from an execution's ``config`` and ``secret_params`` columns."""
    config = config if isinstance(config, dict) else {}
    params = config.get("parameters") if isinstance(config.get("parameters"), dict) else None
    base = (
        dict(params)
        if params is not None
        else {k: v for k, v in config.items() if k not in ("context", "env")}
    )
    base.update(reveal_secrets(secret_params, box))
    return base


async def request_execution(
    session: AsyncSession,
    action: Action,
    params: dict[str, Any] | None,
    *,
    box: SecretBox | None,
    source_service: str,
    executor: int | None = None,
    enforcement: int | None = None,
    parent: int | None = None,
    env_vars: dict[str, str] | None = None,
    original_execution: int | None = None,
    retry_count: int = 0,
    retry_reason: str | None = None,
    validate: bool = True,
    secret_values: dict[str, Any] | None = None,
    stage: bool = True,
) -> Execution:
    """Insert a ``requested`` execution of ``action`` and stage ``ExecutionRequested``.

    ``secret_values`` carries already-separated secrets (reruns and retries copy them).
    ``stage=False`` leaves the message to the caller (:func:`stage_requested`), which may
    dispatch the execution in the same transaction instead (the fast path).
    """
    schema = flat_schema(action.param_schema)
    parameters = apply_defaults(params or {}, schema)
    if validate:
        validate_params(parameters, schema, kind="action", ref=action.ref, allow_templates=False)
    public, secrets = split_secrets(parameters, schema)
    if secret_values:
        secrets = {**secret_values, **secrets}
    execution = Execution(
        action=action.id,
        action_ref=action.ref,
        config=public,
        env_vars=env_vars,
        executor=executor,
        enforcement=enforcement,
        parent=parent,
        status=ExecutionStatus.REQUESTED.value,
        is_workflow=action.workflow_def is not None,
        workflow_def=action.workflow_def,
        max_retries=action.max_retries or 0,
        retry_count=retry_count,
        retry_reason=retry_reason,
        original_execution=original_execution,
        secret_params=seal_secrets(secrets, box),
    )
    if enforcement is not None and parent is None and retry_count == 0:
        # The first run of an enforcement: ``uq_execution_enforcement`` keeps it unique.
        if not await add_once(session, execution, lambda: _has_first_run(session, enforcement)):
            raise Conflict(f"Enforcement {enforcement} already has an execution")
    else:
        session.add(execution)
        await session.flush()
    if stage:
        stage_requested(session, execution, source_service=source_service)
    return execution


def stage_requested(session: AsyncSession, execution: Execution, *, source_service: str) -> None:
    """Stage ``ExecutionRequested`` for the scheduler (a ``requested`` execution of this session)."""
    enqueue(
        session,
        MessageType.EXECUTION_REQUESTED,
        {
            "execution_id": execution.id,
            "action_id": execution.action,
            "action_ref": execution.action_ref,
            "parent_id": execution.parent,
            "enforcement_id": execution.enforcement,
            "config": execution.config,
        },
        source_service=source_service,
    )


async def _has_first_run(session: AsyncSession, enforcement: int) -> bool:
    query = sa.select(Execution.id).where(
        Execution.enforcement == enforcement, Execution.parent.is_(None), Execution.retry_count == 0
    )
    return (await session.execute(query.limit(1))).first() is not None


def status_changed_message(
    execution_id: int, action_ref: str, previous: str, new: str
) -> transitions.Message:
    """``ExecutionStatusChanged`` for a transition, to stage with it (:func:`.transitions.transition`)."""
    payload = {
        "execution_id": execution_id,
        "action_ref": action_ref,
        "previous_status": previous,
        "new_status": new,
        "changed_at": utcnow().isoformat(),
    }
    return MessageType.EXECUTION_STATUS_CHANGED, payload, None


def stage_status_changed(
    session: AsyncSession, execution: Execution, previous: str, new: str, *, source_service: str
) -> None:
    """Stage ``ExecutionStatusChanged`` for a transition ``source_service`` made to ``execution``."""
    message_type, payload, _ = status_changed_message(execution.id, execution.action_ref, previous, new)
    enqueue(session, message_type, payload, source_service=source_service)


# --------------------------------------------------------------------------- state transitions


async def get_locked(session: AsyncSession, execution_id: int, *, refresh: bool = False) -> Execution | None:
    """The execution, locked for the transaction where the database can (see :mod:`.locking`).

    ``refresh`` reloads an instance the session holds already, so the caller sees the row as
    it is now, under the lock.
    """
    if not refresh:
        return await locking.get_locked(session, Execution, execution_id)
    lock = locking.row_locks(session)
    return await session.get(Execution, execution_id, with_for_update=lock, populate_existing=True)


async def reload(session: AsyncSession, execution_id: int) -> Execution | None:
    """The execution as the database has it now (an instance the session holds is refreshed)."""
    return await session.get(Execution, execution_id, populate_existing=True)


async def move(
    session: AsyncSession,
    execution_id: int,
    *,
    from_statuses: Collection[str],
    on_worker: int | None = ANY_WORKER,
    **values: Any,
) -> bool:
    """``UPDATE execution SET values WHERE id = … AND status IN from_statuses`` (and, unless
    ``on_worker`` is :data:`ANY_WORKER`, ``AND worker = on_worker`` / ``IS NULL``).

    The compare-and-set every transition uses (:func:`attune.db.repos.transitions.transition`):
    True when the row changed, False when another actor moved it first. Attributes of a loaded
    instance are left alone (the caller sets them).
    """
    moved = await transitions.transition(
        session, execution_id, from_statuses=from_statuses, on_worker=on_worker, **values
    )
    return moved is not None


async def status_of(session: AsyncSession, execution_id: int) -> str | None:
    """The execution's status now, or None when it does not exist."""
    return await session.scalar(sa.select(Execution.status).where(Execution.id == execution_id))


async def status_worker_result_locked(
    session: AsyncSession, execution_id: int
) -> tuple[str | None, int | None, Any]:
    """``(status, worker, result)`` of the execution, row-locked where the database can; Nones
    if gone."""
    columns = (Execution.status, Execution.worker, Execution.result)
    query = sa.select(*columns).where(Execution.id == execution_id)
    row = (await session.execute(locking.for_update(session, cast("sa.Select[Any]", query)))).first()
    return (row[0], row[1], row[2]) if row is not None else (None, None, None)


async def action_for(session: AsyncSession, execution: Execution) -> Action | None:
    """The action an execution runs: by id, else by ref (a re-registered action); None if gone."""
    action = await by_pk.get(session, Action, execution.action) if execution.action is not None else None
    if action is None:
        action = await session.scalar(sa.select(Action).where(Action.ref == execution.action_ref))
    return action


async def action_param_schema(session: AsyncSession, action_id: int | None) -> Any:
    """The ``param_schema`` of the action with ``action_id`` (None when there is none)."""
    if action_id is None:
        return None
    return await session.scalar(sa.select(Action.param_schema).where(Action.id == action_id))


# --------------------------------------------------------------------------- executor queries


@functools.cache
def _waiting_count() -> sa.Select[int]:
    return sa.select(sa.func.count()).where(
        Execution.status.in_((ExecutionStatus.REQUESTED.value, ExecutionStatus.SCHEDULED.value))
    )


async def waiting_count(session: AsyncSession) -> int:
    """Executions waiting for a worker or a scheduler (``requested``, ``scheduled``)."""
    count: int = (await session.execute(_waiting_count())).scalar_one()
    return count


async def ids_in_status(session: AsyncSession, status: str) -> list[int]:
    """Ids of the executions in ``status``, oldest first."""
    query = sa.select(Execution.id).where(Execution.status == status).order_by(Execution.id)
    return list((await session.execute(query)).scalars())


async def retriable_ids(session: AsyncSession, statuses: Collection[str], *, since: datetime) -> list[int]:
    """Ids of executions in ``statuses`` updated since ``since`` that still have retries left."""
    query = (
        sa.select(Execution.id)
        .where(
            Execution.status.in_(list(statuses)),
            Execution.max_retries > 0,
            Execution.retry_count < Execution.max_retries,
            Execution.updated >= since,
        )
        .order_by(Execution.id)
    )
    return list((await session.execute(query)).scalars())


async def existing_retry(session: AsyncSession, execution: Execution) -> int | None:
    """The id of an automatic retry already created for ``execution`` (redelivery guard)."""
    root = execution.original_execution or execution.id
    query = sa.select(Execution.id).where(
        Execution.original_execution == root,
        Execution.retry_count == execution.retry_count + 1,
        Execution.created >= execution.created,
        Execution.id != execution.id,
    )
    return await session.scalar(query.limit(1))


async def retries_in(
    session: AsyncSession, execution: Execution, statuses: Collection[str]
) -> Sequence[Execution]:
    """The next attempts of ``execution`` (retry count + 1) that are in ``statuses``."""
    root = execution.original_execution or execution.id
    query = sa.select(Execution).where(
        Execution.original_execution == root,
        Execution.retry_count == execution.retry_count + 1,
        Execution.status.in_(list(statuses)),
    )
    return (await session.execute(query)).scalars().all()


async def stuck_in(
    session: AsyncSession, status: str, *, before: datetime, limit: int
) -> Sequence[Execution]:
    """Up to ``limit`` executions in ``status`` not updated since ``before``, oldest first."""
    query = (
        sa.select(Execution)
        .where(Execution.status == status, Execution.updated < before)
        .order_by(Execution.updated, Execution.id)
        .limit(limit)
    )
    return (await session.execute(query)).scalars().all()


async def assigned_to(
    session: AsyncSession, worker_id: int, statuses: Collection[str]
) -> Sequence[Execution]:
    """The executions assigned to ``worker_id`` that are in ``statuses``, oldest first."""
    query = (
        sa.select(Execution)
        .where(Execution.worker == worker_id, Execution.status.in_(list(statuses)))
        .order_by(Execution.id)
    )
    return (await session.execute(query)).scalars().all()


async def slot_holders(session: AsyncSession, statuses: Collection[str]) -> list[tuple[int, int | None]]:
    """``(id, action)`` of the first attempts in ``statuses`` that hold a concurrency slot.

    Rule runs, and manual runs past the gate (a manual run still ``requested`` goes through the
    gate again when it is rescheduled).
    """
    query = (
        sa.select(Execution.id, Execution.action)
        .where(
            sa.or_(
                Execution.enforcement.is_not(None),
                sa.and_(Execution.parent.is_(None), Execution.status != ExecutionStatus.REQUESTED.value),
            ),
            Execution.retry_count == 0,
            Execution.action.is_not(None),
            Execution.status.in_(list(statuses)),
        )
        .order_by(Execution.id)
    )
    return [(int(row[0]), row[1]) for row in (await session.execute(query)).all()]


async def created_since(
    session: AsyncSession,
    since: datetime,
    *,
    action_id: int | None = None,
    pack_id: int | None = None,
    exclude: int | None = None,
) -> int:
    """How many executions were created since ``since`` (of one action, or of one pack's actions)."""
    query = sa.select(sa.func.count()).select_from(Execution).where(Execution.created >= since)
    if exclude is not None:
        query = query.where(Execution.id != exclude)
    if action_id is not None:
        query = query.where(Execution.action == action_id)
    elif pack_id is not None:
        query = query.where(Execution.action.in_(sa.select(Action.id).where(Action.pack == pack_id)))
    return int((await session.execute(query)).scalar_one())


async def worker_heartbeat_locked(session: AsyncSession, worker_id: int) -> datetime | None:
    """The last heartbeat of the worker an execution is assigned to (None: gone or never beat),
    read in the deciding transaction: row-locked where the database can, so a heartbeat or a
    re-registration waits for the decision or wins before it."""
    query = sa.select(Worker.last_heartbeat).where(Worker.id == worker_id)
    row = (await session.execute(locking.for_update(session, query))).first()
    return row[0] if row is not None else None
