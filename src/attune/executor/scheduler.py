"""Scheduler: ``ExecutionRequested`` → a live worker (docs/operations.md, pipeline contract).

For a ``requested`` execution: pick the least loaded live action worker that has the action's
runtime, then, in one transaction, move the execution to ``scheduled`` with an atomic
``UPDATE … WHERE status = 'requested'`` (so two executors, a redelivery or an API cancel can never
lead to two dispatches) and stage the dispatch to ``worker.{id}.executions``.

When no worker qualifies, a background task re-checks every :data:`RETRY_INTERVAL` seconds until
``executor.no_worker_timeout`` and then fails the execution; the consumer is never blocked.
Executions that are no longer ``requested`` (cancelled meanwhile, already scheduled) are skipped.
:meth:`Scheduler.recover` picks up executions a previous process left ``requested``, and
:func:`reschedule` hands a never-started execution of a dead worker back to the scheduler
(docs/operations.md "Guarantees").

The rule fast path (docs/performance.md, "The rule fast path") makes the same choice
(:func:`choose_worker`) inside the event's transaction through :meth:`Scheduler.dispatch_inline`.

A dispatch to a worker of this process (``Platform.local_handoff``) is handed to it right after
the commit instead of through the relay and the bus; its outbox row stays until the worker's
claim (docs/performance.md, "Hand-off to a local worker").
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from attune.db.models import Action, Execution, Worker
from attune.db.models import Runtime as RuntimeRow
from attune.db.repos import actions, executions, workers
from attune.domain.enums import ExecutionStatus
from attune.errors import NotFound
from attune.executor.completion import BackgroundTasks
from attune.messaging.messages import Envelope, ExecutionRequested
from attune.messaging.topology import worker_execution_queue
from attune.operations.executions import dispatch, finish_execution
from attune.platform import Platform
from attune.workflow.engine import WorkflowEngine

log = logging.getLogger(__name__)

#: Seconds between two attempts to find a worker.
RETRY_INTERVAL = 0.5
NATIVE = "native"
_REQUESTED = (ExecutionStatus.REQUESTED.value,)


def runtime_name_of(runtime: RuntimeRow) -> str:
    """The name workers advertise for ``runtime``: ``native`` when it has no interpreter binary."""
    return advertised_name(runtime.name, runtime.execution_config)


def advertised_name(name: str, execution_config: Any) -> str:
    """:func:`runtime_name_of` from the runtime's ``name`` and ``execution_config`` columns."""
    config = execution_config if isinstance(execution_config, dict) else {}
    interpreter = config.get("interpreter")
    binary = interpreter.get("binary") if isinstance(interpreter, dict) else None
    if not config or not binary:
        return NATIVE
    return name


@dataclass(frozen=True)
class _Attempt:
    """The outcome of one scheduling attempt."""

    done: bool
    runtime_name: str | None = None


@dataclass(frozen=True)
class Choice:
    """What the scheduler would do with an execution: its action (None: gone), the runtime it
    needs, and the least loaded live worker that has it (None: none, or a workflow)."""

    action: Action | None
    runtime_name: str | None
    worker: Worker | None


async def choose_worker(session: AsyncSession, platform: Platform, execution: Execution) -> Choice:
    """The scheduler's choice for ``execution``, read in ``session``."""
    action = await executions.action_for(session, execution)
    if action is None or action.workflow_def is not None:
        return Choice(action, None, None)
    runtime_name: str | None = None
    if action.runtime is not None:
        runtime = await actions.runtime_name_and_config(session, action.runtime)
        runtime_name = advertised_name(*runtime) if runtime is not None else None
    worker = await workers.select_worker(
        session,
        runtime_name,
        now=platform.clock.now(),
        heartbeat_interval=platform.settings.worker.heartbeat_interval,
        alive=platform.local_workers,
    )
    return Choice(action, runtime_name, worker)


#: ``admit(execution_id, resume)``: True to schedule now; False when the run was ended or waits
#: (``resume(execution_id)`` schedules it later).
Admission = Callable[[int, Callable[[int], Awaitable[None]]], Awaitable[bool]]


class Scheduler:
    """Consumes ``attune.execution.requests.queue``."""

    def __init__(
        self,
        platform: Platform,
        *,
        retry_interval: float = RETRY_INTERVAL,
        workflows: WorkflowEngine | None = None,
        admit: Admission | None = None,
    ) -> None:
        self._platform = platform
        # The policy gate of manual runs (EnforcementProcessor.admit); None admits everything.
        self._admit = admit
        self._workflows = workflows or WorkflowEngine(platform)
        self._retry_interval = retry_interval
        self._tasks = BackgroundTasks()
        # Executions being scheduled (inline or waiting for a worker): redeliveries are no-ops.
        self._in_flight: set[int] = set()
        # Worker queues known to exist, so a dispatch is never published into the void.
        self._declared: set[int] = set()

    async def handle(self, envelope: Envelope) -> None:
        """Handle one ``ExecutionRequested`` message (a missing execution dead-letters it)."""
        await self.schedule(envelope.payload_as(ExecutionRequested).execution_id)

    async def schedule(self, execution_id: int) -> None:
        """Try once now; when no worker is available, keep trying in the background."""
        if execution_id in self._in_flight:
            return
        if self._admit is not None and not await self._admit(execution_id, self.schedule):
            return
        self._in_flight.add(execution_id)
        waiting = False
        try:
            attempt = await self._attempt(execution_id, give_up=False)
            if not attempt.done:
                waiting = True
                log.info(
                    "no live worker for runtime %r yet; execution %s waits up to %g s",
                    attempt.runtime_name,
                    execution_id,
                    self._platform.settings.executor.no_worker_timeout,
                )
                self._tasks.spawn(self._keep_trying(execution_id), name=f"schedule-{execution_id}")
        finally:
            if not waiting:
                self._in_flight.discard(execution_id)

    async def _keep_trying(self, execution_id: int) -> None:
        clock = self._platform.clock
        deadline = clock.monotonic() + self._platform.settings.executor.no_worker_timeout
        try:
            while True:
                await clock.sleep(self._retry_interval)
                give_up = clock.monotonic() >= deadline
                try:
                    attempt = await self._attempt(execution_id, give_up=give_up)
                except Exception:
                    log.exception("scheduling execution %s failed; retrying", execution_id)
                    continue
                if attempt.done:
                    return
        finally:
            self._in_flight.discard(execution_id)

    async def _attempt(self, execution_id: int, *, give_up: bool) -> _Attempt:
        """One try. ``done`` is False only when no worker was found and ``give_up`` is False."""
        async with self._platform.db.session() as session:
            execution = await executions.get(session, execution_id)
            if execution is None:
                raise NotFound(f"Execution {execution_id} not found")
            if execution.status != ExecutionStatus.REQUESTED.value:
                log.debug("execution %s is %s; nothing to schedule", execution_id, execution.status)
                return _Attempt(done=True)
            choice = await choose_worker(session, self._platform, execution)
        if choice.action is None:
            await self._fail(execution, f"Action '{execution.action_ref}' not found")
            return _Attempt(done=True)
        if choice.action.workflow_def is not None:
            # A workflow never goes to a worker: the workflow engine runs it (docs/workflows.md).
            await self._workflows.start(execution_id)
            return _Attempt(done=True)
        if choice.worker is None:
            if not give_up:
                return _Attempt(done=False, runtime_name=choice.runtime_name)
            await self._fail(execution, f"No live worker can run runtime '{choice.runtime_name or 'any'}'")
            return _Attempt(done=True)
        await self._dispatch(execution, choice.worker)
        return _Attempt(done=True)

    async def dispatch_inline(self, session: AsyncSession, execution: Execution) -> bool:
        """Dispatch a ``requested`` execution of the caller's transaction to a live worker now
        (the fast path, docs/performance.md): True when it is ``scheduled`` and its dispatch
        staged. False — nothing written — when it is a workflow, no worker is live, or the
        worker's queue was not declared by this process yet: the caller then stages
        ``ExecutionRequested`` and this scheduler decides as usual.
        """
        choice = await choose_worker(session, self._platform, execution)
        if choice.action is None or choice.action.workflow_def is not None or choice.worker is None:
            return False
        local = choice.worker.id in self._platform.local_handoff
        if not local and choice.worker.id not in self._declared:
            return False
        if not await dispatch(session, execution, choice.worker):
            return False
        if local:
            self._platform.stage_handoff(session, choice.worker.id, execution.id)
        log.info(
            "execution %s scheduled inline on worker %s (%s)",
            execution.id,
            choice.worker.name,
            choice.worker.id,
        )
        return True

    async def _dispatch(self, execution: Execution, worker: Worker) -> None:
        local = worker.id in self._platform.local_handoff
        if not local and worker.id not in self._declared:
            # Idempotent; makes sure the dispatch lands somewhere (and expires to the DLQ) even
            # if the worker died before declaring its queue.
            await self._platform.bus.declare_queue(worker_execution_queue(worker.id))
            self._declared.add(worker.id)
        async with self._platform.db.transaction() as session:
            if not await dispatch(session, execution, worker):
                log.info("execution %s left 'requested' meanwhile; not dispatching", execution.id)
                return
            if local:
                self._platform.stage_handoff(session, worker.id, execution.id)
        log.info("execution %s scheduled on worker %s (%s)", execution.id, worker.name, worker.id)

    async def _fail(self, execution: Execution, error: str) -> None:
        async with self._platform.db.transaction() as session:
            failed = await finish_execution(
                session,
                execution,
                ExecutionStatus.FAILED,
                {"succeeded": False, "error": error},
                from_statuses=_REQUESTED,
            )
        if failed:
            log.warning("execution %s failed: %s", execution.id, error)

    async def recover(self) -> None:
        """On start: schedule every execution a previous process left ``requested``."""
        async with self._platform.db.session() as session:
            ids = await executions.ids_in_status(session, ExecutionStatus.REQUESTED.value)
        for execution_id in ids:
            try:
                await self.schedule(execution_id)
            except Exception:
                log.exception("could not schedule execution %s", execution_id)

    async def close(self) -> None:
        """Stop waiting for workers (those executions stay ``requested`` and are recovered)."""
        await self._tasks.close()
