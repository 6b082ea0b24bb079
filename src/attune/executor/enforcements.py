"""Enforcement processor: ``EnforcementCreated`` → policy gate → execution (docs/operations.md).

For each ``created`` enforcement: check that its rule is enabled and still points at an action
and a trigger, apply the rate limits, take a concurrency slot (FIFO per action) and request the
execution through :func:`attune.db.repos.executions.request_execution`; the enforcement becomes
``processed``. Any gate failure (rule inert, rate limit, queue full or timed out, ``cancel``
policy at its limit, parameters that fail validation) makes it ``disabled``.

The enforcement table has no column for the reason, so it is logged (WARNING, with the
enforcement id) and the event payload in ``enforcement.payload`` is left untouched.

Waiting for a slot never blocks the consumer: an enforcement that must wait is handed to a
background task and the message is acknowledged. Nothing is lost on restart, because
:meth:`EnforcementProcessor.recover` re-processes every enforcement still ``created``.

Every execution created here holds a slot until its ``ExecutionCompleted`` arrives
(:meth:`EnforcementProcessor.release_slot`); completions of executions that took no slot
(retries, workflow tasks) release nothing, so the counting stays symmetric.

Manual runs (``POST /executions/execute`` and re-runs: no enforcement, no parent) pass the same
gate before the scheduler dispatches them (:meth:`EnforcementProcessor.admit`), under the
policies whose ``apply_to_manual`` is true (the default; docs/policies.md). The execution exists
already, so a rejection ends it ``cancelled`` with the reason in its result, and a run waiting for
a slot stays ``requested`` until it gets one.

Rule enforcements whose action no concurrency or rate-limit policy applies to are usually decided
by :meth:`EnforcementProcessor.decide_inline` in the EventProcessor's transaction (the fast
path, docs/performance.md); they never reach :meth:`EnforcementProcessor.process`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from attune.db.models import Action, Enforcement, Execution
from attune.db.repos import actions, enforcements, executions, rules
from attune.db.repos import policies as policy_repo
from attune.db.types import utcnow
from attune.domain.enums import EnforcementStatus, ExecutionStatus
from attune.domain.params import secret_names
from attune.errors import Conflict, NotFound, ValidationFailed
from attune.executor.completion import BackgroundTasks
from attune.executor.policies import (
    Fingerprint,
    PolicySet,
    fingerprint,
    load_policies,
    rate_limit_violation,
)
from attune.executor.slots import PolicyRejected, SlotManager, StatsWriter
from attune.messaging.messages import EnforcementCreated, Envelope
from attune.operations import template_keys
from attune.operations.executions import finish_execution
from attune.platform import Platform

log = logging.getLogger(__name__)

SOURCE = "executor"
#: Executions that still hold their slot.
OPEN_STATUSES: tuple[str, ...] = (
    ExecutionStatus.REQUESTED.value,
    ExecutionStatus.SCHEDULING.value,
    ExecutionStatus.SCHEDULED.value,
    ExecutionStatus.RUNNING.value,
    ExecutionStatus.CANCELING.value,
)


#: ``dispatch(session, execution)``: schedule a just-requested execution in the caller's
#: transaction; False when it declines (``ExecutionRequested`` is then staged).
InlineDispatch = Callable[[AsyncSession, Execution], Awaitable[bool]]


@dataclass(frozen=True)
class Inline:
    """What :meth:`EnforcementProcessor.decide_inline` did."""

    #: The enforcement is no longer ``created`` (False: the policy path decides it).
    decided: bool
    #: The execution it requested, if any.
    execution_id: int | None = None


@dataclass(frozen=True)
class _Gate:
    """What the slot acquisition needs once the enforcement passed its checks."""

    action_id: int
    limit: int | None
    method: str


class EnforcementProcessor:
    """Consumes ``attune.enforcements.queue`` and owns the concurrency slots of rule executions."""

    def __init__(
        self,
        platform: Platform,
        *,
        slots: SlotManager | None = None,
        policy_refresh_interval: float | None = None,
        stats_interval: float | None = None,
    ) -> None:
        self._platform = platform
        self._slots = slots or SlotManager(max_queue_length=10_000, queue_timeout=3600)
        self._refresh_interval = (
            platform.settings.executor.policy_refresh_interval
            if policy_refresh_interval is None
            else policy_refresh_interval
        )
        self._policies = PolicySet()
        self._fingerprint: Fingerprint | None = None
        self._loaded_at: float | None = None
        self._tasks = BackgroundTasks()
        self._gate_lock = asyncio.Lock()
        self._stats = StatsWriter(
            self._slots,
            platform.db,
            interval=(
                platform.settings.executor.queue_stats_interval if stats_interval is None else stats_interval
            ),
        )
        # Enforcements being handled right now (inline or waiting), so a redelivery is a no-op.
        self._in_flight: set[int] = set()
        # execution id → action id, for every execution that holds a slot.
        self._held: dict[int, int] = {}
        # Manual runs waiting for a slot (a redelivered request must not queue them twice).
        self._admitting: set[int] = set()

    @property
    def slots(self) -> SlotManager:
        """The slot manager (shared with nothing else; exposed for inspection)."""
        return self._slots

    @property
    def policies(self) -> PolicySet:
        """The policies in force."""
        return self._policies

    # -- policies ----------------------------------------------------------------------------------

    async def refresh_policies(self) -> None:
        """Re-read the ``policy`` table."""
        async with self._platform.db.session() as session:
            self._fingerprint = await fingerprint(session)
            self._policies = await load_policies(session)
        self._loaded_at = self._platform.clock.monotonic()

    async def _current_policies(self, session: AsyncSession) -> PolicySet:
        """The policies in force now: a policy committed before this call applies to this decision
        (a burst right after a pack registers its policies is throttled), not only after
        ``policy_refresh_interval``. One aggregate query, in the caller's session, tells whether
        the snapshot is current."""
        current = await fingerprint(session)
        stale = (
            self._loaded_at is None
            or self._platform.clock.monotonic() - self._loaded_at >= self._refresh_interval
        )
        if stale or current != self._fingerprint:
            self._policies = await load_policies(session)
            self._fingerprint = current
            self._loaded_at = self._platform.clock.monotonic()
        return self._policies

    # -- message handling --------------------------------------------------------------------------

    async def handle(self, envelope: Envelope) -> None:
        """Handle one ``EnforcementCreated`` message."""
        await self.process(envelope.payload_as(EnforcementCreated).enforcement_id)

    async def process(self, enforcement_id: int) -> None:
        """Run the gate for one enforcement; returns once it is decided or waiting in a FIFO."""
        if enforcement_id in self._in_flight:
            log.debug("enforcement %s is already being processed", enforcement_id)
            return
        self._in_flight.add(enforcement_id)
        waiting = False
        try:
            # Deliveries are handled concurrently; the lock (fair, taken first thing) makes them
            # take slots or join the FIFO in arrival order, which is enforcement order.
            async with self._gate_lock:
                gate = await self._check(enforcement_id)
                if gate is None:
                    return
                acquire = asyncio.ensure_future(
                    self._slots.acquire(gate.action_id, gate.limit, enforcement_id, method=gate.method)
                )
                # One loop turn: the acquire either holds a slot (or was rejected) or is queued.
                await asyncio.sleep(0)
                if not acquire.done():
                    waiting = True
                    self._tasks.spawn(
                        self._wait_and_run(enforcement_id, gate, acquire),
                        name=f"enforcement-{enforcement_id}",
                    )
            if not waiting:
                await self._run_with_slot(enforcement_id, gate, acquire)
        finally:
            if not waiting:
                self._in_flight.discard(enforcement_id)

    async def _wait_and_run(self, enforcement_id: int, gate: _Gate, acquire: Awaitable[None]) -> None:
        try:
            log.info("enforcement %s waits for a slot of action %s", enforcement_id, gate.action_id)
            self._stats.changed()
            await self._run_with_slot(enforcement_id, gate, acquire)
        finally:
            self._in_flight.discard(enforcement_id)

    async def _run_with_slot(self, enforcement_id: int, gate: _Gate, acquire: Awaitable[None]) -> None:
        """Wait for ``acquire``, then request the execution (or disable the enforcement)."""
        try:
            await acquire
        except PolicyRejected as exc:
            await self._disable_by_id(enforcement_id, f"concurrency policy: {exc}")
            self._stats.changed()
            return
        try:
            created = await self._create(enforcement_id, gate.action_id)
        except BaseException:
            self._slots.release(gate.action_id)
            raise
        if not created:
            self._slots.release(gate.action_id)
        self._stats.changed()

    # -- the gate ----------------------------------------------------------------------------------

    async def _check(self, enforcement_id: int) -> _Gate | None:
        """Decide what can be decided before taking a slot; ``None`` when nothing is left to do."""
        async with self._platform.db.transaction() as session:
            policies = await self._current_policies(session)
            enforcement = await enforcements.get_locked(session, enforcement_id)
            if enforcement is None:
                raise NotFound(f"Enforcement {enforcement_id} not found")
            if enforcement.status != EnforcementStatus.CREATED.value:
                return None
            action, reason = await self._runnable_action(session, enforcement)
            if action is None:
                self._disable(enforcement, reason)
                return None
            violation = await rate_limit_violation(
                session,
                policies.rate_limits_for(action.id, action.pack),
                action_id=action.id,
                pack_id=action.pack,
                now=self._platform.clock.now(),
            )
            if violation is not None:
                self._disable(
                    enforcement,
                    _rate_limit_reason(violation.id, violation.threshold, violation.window_seconds),
                )
                return None
            concurrency = policies.concurrency_for(action.id, action.pack)
        if concurrency is None:
            return _Gate(action.id, None, "enqueue")
        return _Gate(action.id, concurrency.threshold, concurrency.method)

    async def _runnable_action(
        self, session: AsyncSession, enforcement: Enforcement
    ) -> tuple[Action | None, str]:
        """The action to run, or ``None`` and why the enforcement cannot run."""
        rule = await rules.by_id(session, enforcement.rule) if enforcement.rule is not None else None
        if rule is None:
            return None, f"rule {enforcement.rule_ref!r} no longer exists"
        if not rule.enabled:
            return None, f"rule {rule.ref!r} is disabled"
        if rule.trigger is None:
            return None, f"trigger {rule.trigger_ref!r} of rule {rule.ref!r} no longer exists"
        action = await actions.get(session, rule.action) if rule.action is not None else None
        if action is None:
            return None, f"action {rule.action_ref!r} of rule {rule.ref!r} no longer exists"
        return action, ""

    async def _create(self, enforcement_id: int, action_id: int) -> bool:
        """With a slot held: request the execution. False when the enforcement ended otherwise."""
        execution: Execution | None = None
        try:
            async with self._platform.db.transaction() as session:
                policies = await self._current_policies(session)
                enforcement = await enforcements.get_locked(session, enforcement_id)
                if enforcement is None or enforcement.status != EnforcementStatus.CREATED.value:
                    return False
                action, reason = await self._runnable_action(session, enforcement)
                if action is None or action.id != action_id:
                    self._disable(
                        enforcement, reason or f"rule {enforcement.rule_ref!r} now runs another action"
                    )
                    return False
                limits = policies.rate_limits_for(action.id, action.pack)
                if limits:
                    await policy_repo.lock_rate_limits(session)
                    violation = await rate_limit_violation(
                        session,
                        limits,
                        action_id=action.id,
                        pack_id=action.pack,
                        now=self._platform.clock.now(),
                    )
                    if violation is not None:
                        self._disable(
                            enforcement,
                            _rate_limit_reason(violation.id, violation.threshold, violation.window_seconds),
                        )
                        return False
                execution = await self._request(session, enforcement, action)
                if execution is None:
                    return False
                # Registered before commit: the completion cannot be seen earlier than that.
                self._held[execution.id] = action_id
        except BaseException:
            if execution is not None:
                self._held.pop(execution.id, None)
            raise
        log.info("enforcement %s processed: execution %s requested", enforcement_id, execution.id)
        return True

    async def _request(
        self,
        session: AsyncSession,
        enforcement: Enforcement,
        action: Action,
        dispatch: InlineDispatch | None = None,
    ) -> Execution | None:
        """Request ``enforcement``'s execution in ``session`` and mark the enforcement ``processed``.

        None when it ended otherwise: parameters rejected (``disabled``) or a previous delivery
        requested the execution already (``processed``). With ``dispatch``, the execution is
        offered to it before ``ExecutionRequested`` is staged (only when it declines).
        """
        config = enforcement.config if isinstance(enforcement.config, dict) else {}
        try:
            # Decrypted keys were sealed in the enforcement: they go in as secrets.
            declared = secret_names(executions.flat_schema(action.param_schema))
            parameters, secrets = template_keys.unseal(config, self._platform.secrets, declared)
            execution = await executions.request_execution(
                session,
                action,
                parameters,
                box=self._platform.secrets,
                source_service=SOURCE,
                enforcement=enforcement.id,
                secret_values=secrets or None,
                stage=dispatch is None,
            )
        except ValidationFailed as exc:
            self._disable(enforcement, f"parameters rejected: {exc}")
            return None
        except Conflict:
            # A previous delivery requested it already (at-least-once delivery).
            log.info("enforcement %s already has its execution", enforcement.id)
            enforcement.status = EnforcementStatus.PROCESSED.value
            enforcement.resolved_at = enforcement.resolved_at or utcnow()
            return None
        if dispatch is not None and not await dispatch(session, execution):
            executions.stage_requested(session, execution, source_service=SOURCE)
        enforcement.status = EnforcementStatus.PROCESSED.value
        enforcement.resolved_at = utcnow()
        return execution

    # -- the fast path (docs/performance.md) -------------------------------------------------------

    async def decide_inline(
        self, session: AsyncSession, enforcement: Enforcement, *, dispatch: InlineDispatch | None = None
    ) -> Inline:
        """Decide a just-inserted ``created`` enforcement in the caller's transaction when no
        policy applies to its action: request the execution and mark the enforcement
        ``processed`` (or ``disabled`` when its parameters are rejected), as :meth:`process` would.

        ``decided`` is False when a concurrency or rate-limit policy applies (or the rule cannot
        run): nothing was written and the caller stages ``EnforcementCreated`` for the policy
        path. A requested execution holds an (unlimited) slot from now on, as on the policy path;
        the caller must :meth:`forget` it if its transaction does not commit. ``dispatch``
        (the scheduler's :meth:`~attune.executor.scheduler.Scheduler.dispatch_inline`) may also
        schedule it on a live worker in the same transaction.
        """
        if enforcement.status != EnforcementStatus.CREATED.value:
            return Inline(decided=False)
        policies = await self._current_policies(session)
        action, _ = await self._runnable_action(session, enforcement)
        if action is None:
            return Inline(decided=False)
        if policies.concurrency_for(action.id, action.pack) is not None or policies.rate_limits_for(
            action.id, action.pack
        ):
            return Inline(decided=False)
        execution = await self._request(session, enforcement, action, dispatch)
        if execution is None:
            return Inline(decided=True)
        # Counted like the policy path's unlimited slot, so a concurrency policy added later sees
        # this run; registered before commit (the completion cannot be seen earlier than that).
        self._slots.hold(action.id)
        self._held[execution.id] = action.id
        log.info("enforcement %s processed inline: execution %s requested", enforcement.id, execution.id)
        return Inline(decided=True, execution_id=execution.id)

    def forget(self, execution_id: int) -> None:
        """The transaction that requested ``execution_id`` inline did not commit: free its slot."""
        action_id = self._held.pop(execution_id, None)
        if action_id is not None:
            self._slots.release(action_id)
            self._stats.changed()

    def stats_changed(self) -> None:
        """Inline decisions committed: their queue statistics go out with the next write."""
        self._stats.changed()

    def _disable(self, enforcement: Enforcement, reason: str) -> None:
        enforcement.status = EnforcementStatus.DISABLED.value
        enforcement.resolved_at = utcnow()
        log.warning("enforcement %s (rule %s) disabled: %s", enforcement.id, enforcement.rule_ref, reason)

    async def _disable_by_id(self, enforcement_id: int, reason: str) -> None:
        async with self._platform.db.transaction() as session:
            enforcement = await enforcements.get_locked(session, enforcement_id)
            if enforcement is not None and enforcement.status == EnforcementStatus.CREATED.value:
                self._disable(enforcement, reason)

    # -- manual runs -------------------------------------------------------------------------------

    async def manual_policy_free(self, session: AsyncSession, action: Action) -> bool:
        """True when no concurrency or rate-limit policy applies to a manual run of ``action``:
        :meth:`admit` would let it through at once, holding nothing (the manual-run fast path)."""
        policies = await self._current_policies(session)
        return policies.concurrency_for(action.id, action.pack, manual=True) is None and not (
            policies.rate_limits_for(action.id, action.pack, manual=True)
        )

    async def admit(self, execution_id: int, resume: Callable[[int], Awaitable[None]]) -> bool:
        """Gate a requested execution before it is scheduled; True when it may be scheduled now.

        Only manual runs are gated (see the module docstring). False means the run was cancelled
        by a policy, or waits for a slot: ``resume(execution_id)`` is called once it has one.
        """
        if execution_id in self._held:
            return True
        if execution_id in self._admitting:
            return False
        async with self._gate_lock:
            async with self._platform.db.session() as session:
                policies = await self._current_policies(session)
                execution = await executions.get(session, execution_id)
                if execution is None or not is_manual(execution):
                    return True
                if execution.status != ExecutionStatus.REQUESTED.value or execution.action is None:
                    return True
                action = await actions.get(session, execution.action)
                if action is None:
                    return True
                violation = await rate_limit_violation(
                    session,
                    policies.rate_limits_for(action.id, action.pack, manual=True),
                    action_id=action.id,
                    pack_id=action.pack,
                    now=self._platform.clock.now(),
                    exclude=execution_id,
                )
            if violation is not None:
                reason = _rate_limit_reason(violation.id, violation.threshold, violation.window_seconds)
                await self._cancel_manual(execution, reason)
                return False
            concurrency = policies.concurrency_for(action.id, action.pack, manual=True)
            if concurrency is None:
                return True
            acquire = asyncio.ensure_future(
                self._slots.acquire(
                    action.id, concurrency.threshold, -execution_id, method=concurrency.method
                )
            )
            await asyncio.sleep(0)
            if not acquire.done():
                self._admitting.add(execution_id)
                self._tasks.spawn(
                    self._wait_manual(execution, action.id, acquire, resume), name=f"manual-{execution_id}"
                )
                log.info("execution %s waits for a slot of action %s", execution_id, action.ref)
                self._stats.changed()
                return False
        return await self._hold_manual(execution, action.id, acquire)

    async def _wait_manual(
        self,
        execution: Execution,
        action_id: int,
        acquire: asyncio.Future[None],
        resume: Callable[[int], Awaitable[None]],
    ) -> None:
        try:
            if await self._hold_manual(execution, action_id, acquire):
                await resume(execution.id)
        finally:
            self._admitting.discard(execution.id)

    async def _hold_manual(self, execution: Execution, action_id: int, acquire: asyncio.Future[None]) -> bool:
        """Wait for ``acquire``; True when the run now holds its slot and is still requested."""
        try:
            await acquire
        except PolicyRejected as exc:
            await self._cancel_manual(execution, f"concurrency policy: {exc}")
            self._stats.changed()
            return False
        self._held[execution.id] = action_id
        self._stats.changed()
        async with self._platform.db.session() as session:
            status = await executions.status_of(session, execution.id)
        if status != ExecutionStatus.REQUESTED.value:
            # Cancelled while it waited: its completion came before it held the slot.
            await self.release_slot(execution.id)
            return False
        return True

    async def _cancel_manual(self, execution: Execution, reason: str) -> None:
        async with self._platform.db.transaction() as session:
            cancelled = await finish_execution(
                session,
                execution,
                ExecutionStatus.CANCELLED,
                {"succeeded": False, "error": f"Cancelled by policy: {reason}"},
                from_statuses=(ExecutionStatus.REQUESTED.value,),
            )
        if cancelled:
            log.warning("manual execution %s cancelled: %s", execution.id, reason)

    # -- slots -------------------------------------------------------------------------------------

    async def release_slot(self, execution_id: int) -> None:
        """The execution completed: free its slot (no-op when it holds none); the statistics
        follow within ``executor.queue_stats_interval``."""
        action_id = self._held.pop(execution_id, None)
        if action_id is None:
            return
        self._slots.release(action_id)
        self._stats.changed()

    # -- lifecycle ---------------------------------------------------------------------------------

    async def recover(self) -> None:
        """On start: count the slots open rule executions hold, then re-run ``created`` enforcements."""
        await self.refresh_policies()
        async with self._platform.db.session() as session:
            open_rows = await executions.slot_holders(session, OPEN_STATUSES)
            pending = await enforcements.ids_in_status(session, EnforcementStatus.CREATED.value)
        for execution_id, action_id in open_rows:
            if execution_id in self._held or action_id is None:
                continue
            # Unlimited while seeding; the next acquire for the action sets its real limit.
            await self._slots.acquire(action_id, None, -execution_id)
            self._held[execution_id] = action_id
        await self._stats.write()  # the counts of a fresh start, at once
        if pending:
            log.info("re-processing %s enforcement(s) left in 'created'", len(pending))
        for enforcement_id in pending:
            try:
                await self.process(enforcement_id)
            except Exception:
                log.exception("could not re-process enforcement %s", enforcement_id)

    async def close(self) -> None:
        """Stop the waiting enforcements (they stay ``created`` and are recovered next start) and
        write the last queue statistics."""
        await self._tasks.close()
        await self._stats.close()


def is_manual(execution: Execution) -> bool:
    """A run started by hand or re-run: no rule, no workflow, not an automatic retry."""
    return execution.enforcement is None and execution.parent is None and execution.retry_count == 0


def _rate_limit_reason(policy_id: int, threshold: int, window: int | None) -> str:
    return f"rate limit policy {policy_id}: at most {threshold} execution(s) per {window} s"
