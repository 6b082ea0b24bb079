"""Scheduler: ``ExecutionRequested`` → a live worker (services.md §1.7, pipeline contract).

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
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from attune.bus.messages import Envelope, ExecutionRequested, MessageType, dispatch_routing
from attune.bus.topology import worker_execution_queue
from attune.db.models import Action, Execution, Worker
from attune.db.models import Runtime as RuntimeRow
from attune.db.outbox import enqueue
from attune.db.repos import workers
from attune.db.types import utcnow
from attune.domain.enums import ExecutionStatus
from attune.errors import NotFound
from attune.executor.completion import BackgroundTasks, finish_execution, stage_status_changed
from attune.runtime import Runtime
from attune.workflow.engine import WorkflowEngine

log = logging.getLogger(__name__)

SOURCE = "executor"
#: Seconds between two attempts to find a worker.
RETRY_INTERVAL = 0.5
NATIVE = "native"
_REQUESTED = (ExecutionStatus.REQUESTED.value,)


def runtime_name_of(runtime: RuntimeRow) -> str:
    """The name workers advertise for ``runtime``: ``native`` when it has no interpreter binary."""
    config = runtime.execution_config if isinstance(runtime.execution_config, dict) else {}
    interpreter = config.get("interpreter")
    binary = interpreter.get("binary") if isinstance(interpreter, dict) else None
    if not config or not binary:
        return NATIVE
    return runtime.name


@dataclass(frozen=True)
class _Attempt:
    """The outcome of one scheduling attempt."""

    done: bool
    runtime_name: str | None = None


#: ``admit(execution_id, resume)``: True to schedule now; False when the run was ended or waits
#: (``resume(execution_id)`` schedules it later).
Admission = Callable[[int, Callable[[int], Awaitable[None]]], Awaitable[bool]]


class Scheduler:
    """Consumes ``attune.execution.requests.queue``."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        retry_interval: float = RETRY_INTERVAL,
        workflows: WorkflowEngine | None = None,
        admit: Admission | None = None,
    ) -> None:
        self._runtime = runtime
        # The policy gate of manual runs (EnforcementProcessor.admit); None admits everything.
        self._admit = admit
        self._workflows = workflows or WorkflowEngine(runtime)
        self._workflows.schedule_fallback = self.schedule
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
        if execution_id in self._in_flight or self._workflows.deferring(execution_id):
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
                    self._runtime.settings.executor.no_worker_timeout,
                )
                self._tasks.spawn(self._keep_trying(execution_id), name=f"schedule-{execution_id}")
        finally:
            if not waiting:
                self._in_flight.discard(execution_id)

    async def _keep_trying(self, execution_id: int) -> None:
        clock = self._runtime.clock
        deadline = clock.monotonic() + self._runtime.settings.executor.no_worker_timeout
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
        db = self._runtime.db
        async with db.session() as session:
            execution = await session.get(Execution, execution_id)
            if execution is None:
                raise NotFound(f"Execution {execution_id} not found")
            if execution.status != ExecutionStatus.REQUESTED.value:
                log.debug("execution %s is %s; nothing to schedule", execution_id, execution.status)
                return _Attempt(done=True)
            action = await _action_of(session, execution)
            runtime_name: str | None = None
            if action is not None and action.workflow_def is None and action.runtime is not None:
                runtime_row = await session.get(RuntimeRow, action.runtime)
                runtime_name = runtime_name_of(runtime_row) if runtime_row is not None else None
            worker: Worker | None = None
            if action is not None and action.workflow_def is None:
                worker = await workers.select_worker(
                    session,
                    runtime_name,
                    now=self._runtime.clock.now(),
                    heartbeat_interval=self._runtime.settings.worker.heartbeat_interval,
                    alive=self._runtime.local_workers,
                )
        if action is None:
            await self._fail(execution, f"Action '{execution.action_ref}' not found")
            return _Attempt(done=True)
        if action.workflow_def is not None:
            # A workflow never goes to a worker: the workflow engine runs it (services.md §2.2).
            await self._workflows.start(execution_id)
            return _Attempt(done=True)
        if worker is None:
            if not give_up:
                return _Attempt(done=False, runtime_name=runtime_name)
            await self._fail(execution, f"No live worker can run runtime '{runtime_name or 'any'}'")
            return _Attempt(done=True)
        await self._dispatch(execution, worker)
        return _Attempt(done=True)

    async def _dispatch(self, execution: Execution, worker: Worker) -> None:
        if worker.id not in self._declared:
            # Idempotent; makes sure the dispatch lands somewhere (and expires to the DLQ) even
            # if the worker died before declaring its queue.
            await self._runtime.bus.declare_queue(worker_execution_queue(worker.id))
            self._declared.add(worker.id)
        async with self._runtime.db.transaction() as session:
            now = utcnow()
            outcome = await session.execute(
                sa.update(Execution)
                .where(Execution.id == execution.id, Execution.status == ExecutionStatus.REQUESTED.value)
                .values(status=ExecutionStatus.SCHEDULED.value, worker=worker.id, updated=now)
                .execution_options(synchronize_session=False)
            )
            if getattr(outcome, "rowcount", 0) != 1:
                log.info("execution %s left 'requested' meanwhile; not dispatching", execution.id)
                return
            stage_status_changed(
                session, execution, ExecutionStatus.REQUESTED.value, ExecutionStatus.SCHEDULED.value
            )
            enqueue(
                session,
                MessageType.EXECUTION_REQUESTED,
                {
                    "execution_id": execution.id,
                    "worker_id": worker.id,
                    "action_ref": execution.action_ref,
                    "config": execution.config if isinstance(execution.config, dict) else None,
                },
                source_service=SOURCE,
                routing=dispatch_routing(worker.id),
            )
        log.info("execution %s scheduled on worker %s (%s)", execution.id, worker.name, worker.id)

    async def _fail(self, execution: Execution, error: str) -> None:
        async with self._runtime.db.transaction() as session:
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
        async with self._runtime.db.session() as session:
            ids = list(
                (
                    await session.execute(
                        sa.select(Execution.id)
                        .where(Execution.status == ExecutionStatus.REQUESTED.value)
                        .order_by(Execution.id)
                    )
                ).scalars()
            )
        for execution_id in ids:
            try:
                await self.schedule(execution_id)
            except Exception:
                log.exception("could not schedule execution %s", execution_id)

    async def close(self) -> None:
        """Stop waiting for workers (those executions stay ``requested`` and are recovered)."""
        await self._tasks.close()


async def reschedule(session: AsyncSession, execution: Execution, *, worker_id: int | None) -> bool:
    """Send a ``scheduled`` execution that never started back to the scheduler.

    ``scheduled`` on ``worker_id`` → ``requested`` with no worker, and ``ExecutionRequested`` is
    staged in the same transaction, so the scheduler picks a live worker again (possibly the
    same one, restarted). The dispatch still queued for the old worker then claims nothing: the
    worker's claim needs ``scheduled`` on itself. False when the execution moved on meanwhile.
    """
    now = utcnow()
    outcome = await session.execute(
        sa.update(Execution)
        .where(
            Execution.id == execution.id,
            Execution.status == ExecutionStatus.SCHEDULED.value,
            Execution.worker == worker_id if worker_id is not None else Execution.worker.is_(None),
        )
        .values(status=ExecutionStatus.REQUESTED.value, worker=None, updated=now)
        .execution_options(synchronize_session=False)
    )
    if getattr(outcome, "rowcount", 0) != 1:
        return False
    stage_status_changed(session, execution, ExecutionStatus.SCHEDULED.value, ExecutionStatus.REQUESTED.value)
    enqueue(
        session,
        MessageType.EXECUTION_REQUESTED,
        {
            "execution_id": execution.id,
            "action_id": execution.action or 0,
            "action_ref": execution.action_ref,
            "parent_id": execution.parent,
            "enforcement_id": execution.enforcement,
            "config": execution.config if isinstance(execution.config, dict) else None,
        },
        source_service=SOURCE,
    )
    execution.status, execution.worker = ExecutionStatus.REQUESTED.value, None
    log.info("execution %s never started on worker %s; rescheduled", execution.id, worker_id)
    return True


async def _action_of(session: AsyncSession, execution: Execution) -> Action | None:
    action = await session.get(Action, execution.action) if execution.action is not None else None
    if action is None:
        action = await session.scalar(sa.select(Action).where(Action.ref == execution.action_ref))
    return action
