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

A step gives at most :data:`BUDGET` tasks per transaction (the conductor's ``room``, counted by
:meth:`InlineTasks.room`), so a step never holds the database for long: the tasks and items past it
are not started, exactly like the items a ``concurrency`` holds back, and nothing is written for
them until they run. After the commit the engine feeds the run a ``Continue`` event in a
transaction of its own, :data:`BUDGET` more at a time. What makes them durable is the run's
*deferred timer* (:func:`deferred_timer`, persisted with the run's other timers): each step that
leaves tasks held moves it :data:`DEFERRED_GRACE` seconds ahead, the step that holds none drops it;
if it ever comes due (the process stopped between two steps), the engine's timer loop feeds the
``Continue`` itself (docs/performance.md, "In-process workflow tasks").
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
from attune.domain.params import apply_defaults, validate_params
from attune.lru import LruCache
from attune.worker.runners import RunResult
from attune.worker.runners.inprocess import builtin_for, run_builtin

log = logging.getLogger(__name__)

#: Tasks a run's steps start in one transaction at most (the rest wait for a ``Continue``).
BUDGET = 2000
#: The ``kind`` of a run's deferred timer (:func:`deferred_timer`).
DEFERRED_KIND = "deferred"
#: Seconds without progress after which the timer loop continues a run whose tasks were held.
DEFERRED_GRACE = 10.0
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
    #: RunTask commands the conductor gave in this transaction (:meth:`room`).
    issued: int = 0
    #: Runs whose step left tasks held back by the room: continued after the commit.
    held: set[int] = field(default_factory=set)
    _parents: dict[int, dict[str, Any]] = field(default_factory=dict)
    _valid: set[tuple[int, str]] = field(default_factory=set)

    def builtin(self, action: Action | None) -> str | None:
        """The in-process implementation of ``action`` when one more task may run inline."""
        if not self.enabled or action is None or action.workflow_def is not None:
            return None
        return builtin_for(action.ref, action.pack_ref, action.entrypoint)

    def room(self) -> int:
        """How many more tasks a step in this transaction may start (the conductor's ``room``)."""
        return max(self.budget - self.issued, 0)

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
    ) -> tuple[str, Any]:
        """Run one task now; its row is written by :meth:`flush`. Returns ``(status, result)``.
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
        ran = run_builtin(
            builtin,
            {**parameters, **secrets},
            output_format=(action.output_format or "text").lower(),
            timeout=link.get("timeout_seconds"),
            log_dir=None,
        )
        origin = self._parent(parent)
        self.pending.append(
            _Child(_row(action, origin, stored, secrets, self.box, link, state_id, task, attempt, ran))
        )
        return ran.status, ran.result

    async def flush(self, session: AsyncSession) -> None:
        """Write the children run since the last flush: one bulk insert, their history,
        notifications and messages."""
        if self.pending:
            children, self.pending = self.pending, []
            rows = [child.values for child in children]
            # No ExecutionCompleted follows these (insert_finished), so none is remembered.
            await child_rows.insert_finished(session, rows, source=self.source)


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
    ran: RunResult,
) -> dict[str, Any]:
    """The finished ``execution`` row of a child."""
    now = utcnow()
    return {
        "action": action.id,
        "action_ref": action.ref,
        "config": stored,
        **parent,
        "status": ran.status,
        "result": ran.result,
        "started_at": now,
        "is_workflow": False,
        "workflow_def": None,
        "workflow_task": {**link, "counted": True, "completed_at": now.isoformat()},
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
