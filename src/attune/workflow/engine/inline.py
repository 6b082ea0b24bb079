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
notifications are staged in the outbox of that transaction. A crash before the commit loses the
whole step, which the message that started it redelivers. Such a child was never requested on
the bus, holds no slot and is counted already (``workflow_task.counted``), so no
``ExecutionCompleted`` is staged for it (:func:`attune.db.repos.children.insert_finished`).

At most :data:`BUDGET` tasks run inline per transaction; beyond it the children are written
``requested`` (their history and ``execution_created`` staged, no ``ExecutionRequested``) and the
engine runs them after the commit, :data:`BUDGET` per transaction, so a step never holds the
database for long. What makes them durable is the run's *deferred timer*
(:func:`deferred_timer`, persisted with the run's other timers): each of those transactions moves
it :data:`DEFERRED_GRACE` seconds ahead while deferred children remain and drops it with the last
one; if it ever comes due (the process stopped between two of them), the engine's timer loop runs
the children still ``requested`` (docs/performance.md, "In-process workflow tasks").
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from attune.db.models import Action, Execution
from attune.db.repos import children as child_rows
from attune.db.repos import executions as runs
from attune.db.repos import workers
from attune.db.types import utcnow
from attune.domain.crypto import SecretBox
from attune.domain.enums import ExecutionStatus
from attune.domain.params import apply_defaults, validate_params
from attune.lru import LruCache
from attune.worker.runners import RunResult
from attune.worker.runners.inprocess import builtin_for, run_builtin

log = logging.getLogger(__name__)

#: Tasks run inline in one transaction at most (a step past it defers the rest).
BUDGET = 2000
#: The ``kind`` of a run's deferred timer (:func:`deferred_timer`).
DEFERRED_KIND = "deferred"
#: Seconds without progress after which a run's deferred children are run by the timer loop.
DEFERRED_GRACE = 10.0

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
    #: Ids of the deferred children counted in this transaction (their ExecutionCompleted changes
    #: nothing).
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

    def prepare(self, parent: Execution) -> None:
        """Read what children of ``parent`` copy from it now (on the event loop): :meth:`run`
        may then run in the render pool (attune.workflow.engine.commands.run_ready_task)."""
        self._parent(parent)

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
        declared: Collection[str],
    ) -> tuple[str, Any] | None:
        """Run one task now; its row is written by :meth:`flush`. Returns ``(status, result)``,
        or None when the budget is spent: the child is written ``requested`` and runs later.
        ``declared``: the action's secret parameter names (the run's cache, ``Run.secrets``).

        Raises :class:`AttuneError` when the parameters are invalid (the caller reports the task
        failed without a child, exactly as when a requested child cannot be created).
        """
        schema = runs.flat_schema(action.param_schema)
        parameters = apply_defaults(public, schema)
        self._validate(action, parameters, schema)
        secrets = {name: parameters[name] for name in declared if name in parameters}
        stored = (
            {key: (runs.SECRET_MASK if key in secrets else value) for key, value in parameters.items()}
            if secrets
            else parameters
        )
        if revealed:
            secrets = {**revealed, **secrets}
        ran: RunResult | None = None
        if not self.exhausted:
            ran = run_builtin(
                builtin,
                {**parameters, **secrets},
                output_format=(action.output_format or "text").lower(),
                timeout=link.get("timeout_seconds"),
                log_dir=None,
            )
            self.ran += 1
        child = _Child(
            _row(action, self._parent(parent), stored, secrets, self.box, link, state_id, task, attempt, ran)
        )
        if ran is None:
            self.deferred.append(child)
            return None
        self.pending.append(child)
        return ran.status, ran.result

    async def flush(self, session: AsyncSession) -> None:
        """Write the children run (and deferred) since the last flush: one bulk insert each,
        their history, notifications and messages."""
        if self.pending:
            children, self.pending = self.pending, []
            rows = [child.values for child in children]
            # No ExecutionCompleted follows these (insert_finished), so none is remembered.
            await child_rows.insert_finished(session, rows, source=self.source)
        if self.deferred:
            children, self.deferred = self.deferred, []
            rows = [child.values for child in children]
            ids = await child_rows.insert_deferred(session, rows, source=self.source)
            for execution_id, values in zip(ids, rows, strict=True):
                self.deferred_ids.setdefault(values["workflow_execution_id"], []).append(execution_id)

    async def run_deferred(
        self, session: AsyncSession, ids: list[int]
    ) -> list[tuple[dict[str, Any], str, Any]]:
        """Run deferred children that are still ``requested`` (a worker may have taken some):
        written finished, with their history, notifications and messages. Returns
        ``(workflow_task, status, result)`` of each, in id order, for the conductor."""
        rows = await child_rows.requested(session, ids)
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
        await child_rows.finish(session, updates, written, now=now, source=self.source)
        self.counted_ids.extend(execution_id for execution_id, _ in written)
        return [(values["workflow_task"], values["status"], values["result"]) for _, values in written]


def deferred_timer(now: datetime) -> dict[str, Any]:
    """A run's deferred timer, due :data:`DEFERRED_GRACE` seconds after ``now``."""
    due = now + timedelta(seconds=DEFERRED_GRACE)
    return {"task": "", "index": None, "kind": DEFERRED_KIND, "due": due.isoformat()}


def is_deferred_timer(timer: Mapping[str, Any]) -> bool:
    return timer.get("kind") == DEFERRED_KIND


def set_deferred_timer(timers: list[dict[str, Any]], now: datetime | None) -> None:
    """Replace the run's deferred timer by one due a grace after ``now`` (None: drop it)."""
    timers[:] = [timer for timer in timers if not is_deferred_timer(timer)]
    if now is not None:
        timers.append(deferred_timer(now))


async def deferred_ids(session: AsyncSession, state_id: int) -> list[int]:
    """The children of run ``state_id`` still ``requested`` whose action runs in-process."""
    found = await child_rows.deferred_of(session, state_id)
    in_process: dict[int | None, bool] = {}
    ids: list[int] = []
    for execution_id, action_id in found:
        if action_id not in in_process:
            action = await session.get(Action, action_id) if action_id is not None else None
            in_process[action_id] = action is not None and (
                action.workflow_def is None
                and builtin_for(action.ref, action.pack_ref, action.entrypoint) is not None
            )
        if in_process[action_id]:
            ids.append(execution_id)
    return ids


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
