"""Workflow tasks run inside the engine's own step (docs/performance.md, "In-process workflow tasks").

A workflow task whose action the in-process runner implements (``core.noop``, ``core.echo``:
:func:`attune.worker.runners.inprocess.builtin_for`) needs no worker: the step that starts it
runs it at once, writes its execution row already finished, and feeds the conductor its
``TaskFinished`` in the same transaction, so the next task (or the next item of a ``with_items``)
starts in that transaction too. A chain of such tasks is one transaction; a ``with_items`` over
them is one bulk insert per step.

Nothing durable is skipped: each child is an ``execution`` row (``requested`` → ``completed``
or ``failed`` in its history, with ``started_at``, ``result``, the parent's links) committed
with the workflow's state; its ``execution_created`` and ``execution_status_changed``
notifications, its ``ExecutionStatusChanged`` and ``ExecutionCompleted`` messages are staged in
the outbox of that transaction. A crash before the commit loses the whole step, which the
message that started it redelivers. Children carry ``workflow_task.counted`` so the completion
listener's ``ExecutionCompleted`` changes nothing.

At most :data:`BUDGET` tasks run inline per transaction; beyond it tasks are requested as usual
(and the worker runs them in-process), so a step never holds the database for long.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from attune.bus.messages import MessageType, change_notification_routing, make_envelope, routing_for
from attune.db.changes import notifications_for
from attune.db.history import RowChange, write_history
from attune.db.models import Action, Enforcement, Execution, OutboxMessage
from attune.db.outbox import note_staged
from attune.db.repos import runs, workers
from attune.db.types import utcnow
from attune.domain.crypto import SecretBox
from attune.domain.enums import ExecutionStatus
from attune.domain.params import apply_defaults, validate_params
from attune.errors import AttuneError
from attune.lru import LruCache
from attune.worker.runners import RunResult
from attune.worker.runners.inprocess import builtin_for, run_builtin

log = logging.getLogger(__name__)

#: Tasks run inline in one transaction at most (a step past it requests the rest as usual).
BUDGET = 2000

_REQUESTED = ExecutionStatus.REQUESTED.value
#: Distinct valid parameter sets remembered per step.
_VALID_MEMO = 256


@dataclass
class _Child:
    """One inline child, run, waiting for the bulk insert at the end of the step."""

    values: dict[str, Any]


@dataclass
class InlineTasks:
    """The inline children of one transaction (lives in the step's ``WorkflowContext``)."""

    box: SecretBox | None
    source: str
    budget: int = BUDGET
    #: False: every task is requested from a worker (``worker.in_process_actions`` off).
    enabled: bool = True
    #: For the capacity warning: the workers' heartbeat interval and this process's workers.
    heartbeat_interval: float = 30.0
    alive: Collection[int] = ()
    #: (workflow run, task) pairs warned about already (the engine's, so a run is warned once).
    warned: LruCache[tuple[int, str], bool] = field(default_factory=lambda: LruCache(1024))
    pending: list[_Child] = field(default_factory=list)
    ran: int = 0
    #: Children of in-process actions past the budget: written ``requested``, run by a later step.
    deferred: list[_Child] = field(default_factory=list)
    #: Ids of the deferred children written by :meth:`flush`, by workflow run, for the engine.
    deferred_ids: dict[int, list[int]] = field(default_factory=dict)
    #: Ids of the children counted in this transaction (their ExecutionCompleted changes nothing).
    counted_ids: list[int] = field(default_factory=list)
    _parents: dict[int, dict[str, Any]] = field(default_factory=dict)
    _valid: set[tuple[int, str]] = field(default_factory=set)

    def builtin(self, action: Action | None) -> str | None:
        """The in-process implementation of ``action`` when one more task may run inline."""
        if not self.enabled or action is None or action.workflow_def is not None:
            return None
        return builtin_for(action.ref, action.pack_ref, action.entrypoint)

    @property
    def exhausted(self) -> bool:
        """True once this transaction has run its share of tasks: later ones are deferred."""
        return self.ran >= self.budget

    def _validate(self, action: Action, parameters: dict[str, Any], schema: dict[str, Any] | None) -> None:
        """:func:`validate_params`, once per distinct parameter set of an action in this step
        (the items of a ``with_items`` mostly repeat one)."""
        try:
            key = (action.id, json.dumps(parameters, sort_keys=True, default=str))
        except (TypeError, ValueError):
            key = None
        if key is not None and key in self._valid:
            return
        validate_params(parameters, schema, kind="action", ref=action.ref, allow_templates=False)
        if key is not None and len(self._valid) < _VALID_MEMO:
            self._valid.add(key)

    def _parent(self, parent: Execution) -> dict[str, Any]:
        """What a child copies from its workflow's execution, read once per step."""
        found = self._parents.get(parent.id)
        if found is None:
            found = self._parents[parent.id] = {
                "env_vars": parent.env_vars,
                "parent": parent.id,
                "enforcement": parent.enforcement,
                "executor": parent.executor,
            }
        return found

    def run(
        self,
        action: Action,
        builtin: str,
        public: dict[str, Any],
        revealed: dict[str, Any],
        link: Mapping[str, Any],
        *,
        parent: Execution,
        state_id: int,
        task: str,
        attempt: int,
    ) -> tuple[str, Any] | None:
        """Run one task now; its row is written by :meth:`flush`. Returns ``(status, result)``,
        or None when the budget is spent: the child is written ``requested`` and runs later.

        Raises :class:`AttuneError` when the parameters are invalid (the caller reports the task
        failed without a child, exactly as when a requested child cannot be created).
        """
        schema = runs.flat_schema(action.param_schema)
        parameters = apply_defaults(public, schema)
        self._validate(action, parameters, schema)
        stored, secrets = runs.split_secrets(parameters, schema)
        if revealed:
            secrets = {**revealed, **secrets}
        if self.exhausted:
            self.deferred.append(
                _Child(
                    _row(
                        action,
                        self._parent(parent),
                        stored,
                        secrets,
                        self.box,
                        link,
                        state_id,
                        task,
                        attempt,
                        None,
                    )
                )
            )
            return None
        ran = run_builtin(
            builtin,
            {**parameters, **secrets},
            output_format=(action.output_format or "text").lower(),
            timeout=link.get("timeout_seconds"),
            log_dir=None,
        )
        self.ran += 1
        self.pending.append(
            _Child(
                _row(
                    action,
                    self._parent(parent),
                    stored,
                    secrets,
                    self.box,
                    link,
                    state_id,
                    task,
                    attempt,
                    ran,
                )
            )
        )
        return ran.status, ran.result

    async def flush(self, session: AsyncSession) -> None:
        """Write the children run (and deferred) since the last flush: one bulk insert each,
        their history, notifications and messages."""
        if self.pending:
            children, self.pending = self.pending, []
            rows = [child.values for child in children]
            ids = await _insert(session, rows)
            await session.run_sync(_capture, list(zip(ids, rows, strict=True)), self.source)
            self.counted_ids.extend(ids)
        if self.deferred:
            children, self.deferred = self.deferred, []
            rows = [child.values for child in children]
            ids = await _insert(session, rows)
            await session.run_sync(_capture_requested, list(zip(ids, rows, strict=True)), self.source)
            for execution_id, values in zip(ids, rows, strict=True):
                self.deferred_ids.setdefault(values["workflow_execution_id"], []).append(execution_id)

    async def run_deferred(
        self, session: AsyncSession, ids: list[int]
    ) -> list[tuple[dict[str, Any], str, Any]]:
        """Run deferred children that are still ``requested`` (a worker may have taken some):
        written finished, with their history, notifications and messages. Returns
        ``(workflow_task, status, result)`` of each, in id order, for the conductor."""
        table = cast(sa.Table, Execution.__table__)
        query = (
            sa.select(
                table.c.id,
                table.c.action,
                table.c.action_ref,
                table.c.config,
                table.c.secret_params,
                table.c.workflow_task,
                table.c.enforcement,
                table.c.parent,
                table.c.created,
            )
            .where(table.c.id.in_(ids), table.c.status == _REQUESTED)
            .order_by(table.c.id)
        )
        if session.bind is not None and session.bind.dialect.name == "postgresql":
            query = query.with_for_update()
        rows = (await session.execute(query)).all()
        actions: dict[int, Action | None] = {}
        written: list[tuple[int, dict[str, Any]]] = []
        updates: list[dict[str, Any]] = []
        now = utcnow()
        for row in rows:
            if row.action not in actions:
                actions[row.action] = await session.get(Action, row.action)
            action = actions[row.action]
            builtin = (
                builtin_for(action.ref, action.pack_ref, action.entrypoint) if action is not None else None
            )
            if action is None or builtin is None:
                continue
            parameters = runs.parameters_from(row.config, row.secret_params, self.box)
            link = row.workflow_task if isinstance(row.workflow_task, dict) else {}
            ran = run_builtin(
                builtin,
                parameters,
                output_format=(action.output_format or "text").lower(),
                timeout=link.get("timeout_seconds"),
                log_dir=None,
            )
            task = {**link, "counted": True, "completed_at": now.isoformat()}
            updates.append(
                {"b_id": row.id, "status": ran.status, "result": ran.result, "workflow_task": task}
            )
            written.append(
                (
                    row.id,
                    {
                        "action": row.action,
                        "action_ref": row.action_ref,
                        "enforcement": row.enforcement,
                        "parent": row.parent,
                        "created": row.created,
                        "is_workflow": False,
                        "status": ran.status,
                        "result": ran.result,
                        "workflow_task": task,
                        "updated": now,
                    },
                )
            )
        if not updates:
            return []
        # On the connection: the ORM change capture would read the rows again; _capture_finished
        # records the changes itself.
        connection = await session.connection()
        await connection.execute(
            sa.update(table)
            .where(table.c.id == sa.bindparam("b_id"), table.c.status == _REQUESTED)
            .values(
                status=sa.bindparam("status"),
                result=sa.bindparam("result", type_=table.c.result.type),
                workflow_task=sa.bindparam("workflow_task", type_=table.c.workflow_task.type),
                started_at=now,
                updated=now,
            ),
            updates,
        )
        await session.run_sync(_capture_finished, written, self.source)
        self.counted_ids.extend(execution_id for execution_id, _ in written)
        return [(values["workflow_task"], values["status"], values["result"]) for _, values in written]


def _row(
    action: Action,
    parent: Mapping[str, Any],
    stored: dict[str, Any],
    secrets: dict[str, Any],
    box: SecretBox | None,
    link: Mapping[str, Any],
    state_id: int,
    task: str,
    attempt: int,
    ran: RunResult | None,
) -> dict[str, Any]:
    """The ``execution`` row of a child: finished when ``ran`` is given, else ``requested``."""
    now = utcnow()
    return {
        "action": action.id,
        "action_ref": action.ref,
        "config": stored,
        **parent,
        "status": ran.status if ran is not None else _REQUESTED,
        "result": ran.result if ran is not None else None,
        "started_at": now if ran is not None else None,
        "is_workflow": False,
        "workflow_def": None,
        "workflow_task": {**link, "counted": True, "completed_at": now.isoformat()}
        if ran is not None
        else dict(link),
        "workflow_execution_id": state_id,
        "workflow_task_name": task,
        "retry_count": attempt - 1,
        "max_retries": 0,
        "secret_params": runs.seal_secrets(secrets, box),
        "created": now,
        "updated": now,
    }


async def _insert(session: AsyncSession, rows: list[dict[str, Any]]) -> list[int]:
    table = cast(sa.Table, Execution.__table__)
    result = await session.execute(sa.insert(table).returning(table.c.id, sort_by_parameter_order=True), rows)
    return [row[0] for row in result.all()]


def _capture_requested(session: Session, written: list[tuple[int, dict[str, Any]]], source: str) -> None:
    """History, notification and ``ExecutionRequested`` of deferred children (a worker may run
    them if the deferred step never comes: after a crash, the scheduler recovers them)."""
    connection = session.connection()
    changes = [
        RowChange("execution", "INSERT", execution_id, None, {**values, "id": execution_id})
        for execution_id, values in written
    ]
    write_history(connection, changes)
    first_id, first = written[0]
    requested = _Template(
        MessageType.EXECUTION_REQUESTED,
        {
            "execution_id": first_id,
            "action_id": first["action"],
            "action_ref": first["action_ref"],
            "parent_id": first["parent"],
            "enforcement_id": first["enforcement"],
            "config": first["config"],
        },
        source,
    )
    messages = _notifications(changes, _refs(connection, written), source) + [
        requested.row(
            {
                "execution_id": execution_id,
                "action_id": values["action"],
                "action_ref": values["action_ref"],
                "config": values["config"],
            }
        )
        for execution_id, values in written
    ]
    connection.execute(sa.insert(OutboxMessage), messages)
    note_staged(session, messages)


def _capture_finished(session: Session, written: list[tuple[int, dict[str, Any]]], source: str) -> None:
    """History, notifications and messages of deferred children that have now run."""
    connection = session.connection()
    changes: list[RowChange] = []
    for execution_id, values in written:
        new = {**values, "id": execution_id}
        old = {**new, "status": _REQUESTED, "result": None, "workflow_task": None}
        changes.append(RowChange("execution", "UPDATE", execution_id, old, new))
    write_history(connection, changes)
    messages = _notifications(changes, _refs(connection, written), source) + _messages(written, source)
    connection.execute(sa.insert(OutboxMessage), messages)
    note_staged(session, messages)


def _capture(session: Session, written: list[tuple[int, dict[str, Any]]], source: str) -> None:
    """History, notifications and messages of inline children, as if each had been inserted
    ``requested`` and then finished (the change capture sees no ORM flush for a bulk insert)."""
    connection = session.connection()
    changes: list[RowChange] = []
    for execution_id, values in written:
        new = {**values, "id": execution_id}
        requested = {**new, "status": _REQUESTED, "result": None, "workflow_task": None}
        changes.append(RowChange("execution", "INSERT", execution_id, None, requested))
        changes.append(RowChange("execution", "UPDATE", execution_id, requested, new))
    write_history(connection, changes)
    messages = _notifications(changes, _refs(connection, written), source) + _messages(written, source)
    connection.execute(sa.insert(OutboxMessage), messages)
    note_staged(session, messages)


def _refs(
    connection: sa.Connection, written: list[tuple[int, dict[str, Any]]]
) -> dict[int, tuple[str | None, str | None]]:
    """Rule and trigger refs of the enforcement the children share with their workflow."""
    ids = {values["enforcement"] for _, values in written if isinstance(values.get("enforcement"), int)}
    if not ids:
        return {}
    query = sa.select(Enforcement.id, Enforcement.rule_ref, Enforcement.trigger_ref).where(
        Enforcement.id.in_(sorted(ids))
    )
    return {row.id: (row.rule_ref, row.trigger_ref) for row in connection.execute(query)}


def _notifications(
    changes: list[RowChange], refs: dict[int, tuple[str | None, str | None]], source: str
) -> list[dict[str, Any]]:
    """The change notifications of ``changes`` (:func:`attune.db.changes.notifications_for`),
    one validated envelope per channel and copies for the rest."""
    timestamp = utcnow().isoformat()
    templates: dict[str, _Template] = {}
    rows: list[dict[str, Any]] = []
    for change in changes:
        for notice in notifications_for(change, refs):
            fields = {
                "notification_type": notice.channel,
                "entity_type": notice.entity_type,
                "entity_id": notice.entity_id,
                "payload": notice.payload,
            }
            template = templates.get(notice.channel)
            if template is None:
                template = templates[notice.channel] = _Template(
                    MessageType.CHANGE_NOTIFICATION,
                    {**fields, "timestamp": timestamp},
                    source,
                    routing=change_notification_routing(notice.channel),
                )
            rows.append(template.row(fields))
    return rows


class _Template:
    """Envelopes of one type that differ only in their ids and payload values: validated once
    through the message model, then copied (thousands of children per step)."""

    def __init__(
        self,
        message_type: MessageType,
        sample: dict[str, Any],
        source: str,
        *,
        routing: tuple[str, str] | None = None,
    ) -> None:
        self.type = message_type
        self.body = make_envelope(message_type, sample, source_service=source).model_dump(mode="json")
        self.exchange, self.routing_key = routing or routing_for(message_type)

    def row(self, payload: dict[str, Any]) -> dict[str, Any]:
        message_id = str(uuid.uuid4())
        body = {
            **self.body,
            "message_id": message_id,
            "correlation_id": message_id,
            "payload": {**self.body["payload"], **payload},
        }
        return {
            "exchange": self.exchange,
            "routing_key": self.routing_key,
            "message_type": str(self.type),
            "message_id": message_id,
            "body": body,
        }


def _messages(written: list[tuple[int, dict[str, Any]]], source: str) -> list[dict[str, Any]]:
    first_id, first = written[0]
    now: datetime = first["updated"]
    changed = _Template(
        MessageType.EXECUTION_STATUS_CHANGED,
        {
            "execution_id": first_id,
            "action_ref": first["action_ref"],
            "previous_status": _REQUESTED,
            "new_status": first["status"],
            "changed_at": now.isoformat(),
        },
        source,
    )
    completed = _Template(
        MessageType.EXECUTION_COMPLETED,
        {
            "execution_id": first_id,
            "action_id": first["action"],
            "action_ref": first["action_ref"],
            "status": first["status"],
            "result": None,
            "completed_at": now.isoformat(),
        },
        source,
    )
    rows: list[dict[str, Any]] = []
    for execution_id, values in written:
        common = {"execution_id": execution_id, "action_ref": values["action_ref"]}
        rows.append(changed.row({**common, "new_status": values["status"]}))
        rows.append(
            completed.row(
                {
                    **common,
                    "action_id": values["action"],
                    "status": values["status"],
                    "result": values["result"],
                }
            )
        )
    return rows


def invalid(exc: AttuneError) -> str:
    """The failure a task whose parameters are invalid reports."""
    return exc.message


async def warn_if_capped(
    session: AsyncSession,
    tasks: InlineTasks,
    *,
    execution_id: int,
    state_id: int,
    task: str,
    wanted: int,
) -> None:
    """Log a warning when the live workers' slots are fewer than the ``with_items`` task asks to
    run at once (its ``concurrency``, or every item): the workflow's concurrency is then not what
    limits it (docs/workflows.md)."""
    if wanted <= 1 or tasks.warned.get((state_id, task)):
        return
    tasks.warned.put((state_id, task), True)
    live = await workers.live_action_workers(
        session, now=utcnow(), heartbeat_interval=tasks.heartbeat_interval, alive=tasks.alive
    )
    slots = sum(workers.worker_capacity(worker) for worker in live)
    if slots < wanted:
        log.warning(
            "workflow execution %s: task %s runs %d items at once, but the live workers have %d "
            "slot(s) in all: at most %d run at a time (raise worker.max_concurrent_tasks or add workers)",
            execution_id,
            task,
            wanted,
            slots,
            slots,
        )
