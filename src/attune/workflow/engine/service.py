"""The executor's workflow component: starts runs, advances them, fires their timers.

It owns the caches shared by the steps it takes (parsed specs, the states it wrote last, the
in-process children it counted) and batches the completions of one run into one step.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from attune.db.models import Action, Execution
from attune.db.repos import workflows as repo
from attune.domain.templates import TemplateEngine
from attune.lru import LruCache
from attune.platform import Platform
from attune.workflow.engine import inline as inline_tasks
from attune.workflow.engine.advance import (
    advance_children,
    advance_deferred,
    fire_deferred,
    fire_timer,
    start_workflow,
)
from attune.workflow.engine.store import (
    SOURCE,
    TIMERS_KEY,
    SpecCache,
    StateCache,
    WorkflowContext,
)

log = logging.getLogger(__name__)

#: The timer loop's shortest sleep after a failed pass (a timer that cannot fire is retried).
TIMER_INTERVAL = 0.2
#: Seconds between two reads of the running workflow runs by the timer loop (``run_timers``):
#: the longest a timer written by another process (the API, another executor) waits past its
#: due time. Timers this engine wrote itself fire when due, without a read.
RESCAN_INTERVAL = 2.0
#: The shortest sleep of the timer loop (a timer due now fires in the next pass).
MIN_SLEEP = 0.01
#: In-process children remembered as counted, so their ExecutionCompleted costs no query.
COUNTED_MEMORY = 50_000


def _due(timer: dict[str, Any]) -> datetime:
    """When a persisted timer is due."""
    return datetime.fromisoformat(str(timer["due"]))


class WorkflowEngine:
    """The executor's workflow component: starts runs, advances them, fires their timers.

    Timers: a pass lists running workflow runs with their ``updated`` stamp and re-reads the
    timers of runs changed by someone else (the API, another executor); runs this engine wrote
    itself are known already. Due timers fire in their own transaction. The loop
    (``run_timers``) sleeps until the earliest timer it knows is due, is woken when this engine
    writes a run with timers, and reads the database every ``RESCAN_INTERVAL`` seconds for runs
    written elsewhere, so an idle server does not query every 0.2 s (docs/performance.md).
    """

    def __init__(self, platform: Platform) -> None:
        self._platform = platform
        self._specs = SpecCache()
        self._engine = TemplateEngine()
        self._known: dict[int, tuple[datetime, list[dict[str, Any]]]] = {}
        self._states = StateCache()
        #: Deferred in-process children a background step of this engine is about to run.
        self._deferring: set[int] = set()
        self._warned: LruCache[tuple[int, str], bool] = LruCache(1024)
        #: Completions waiting for the step of their run, and the runs being stepped.
        self._finishing: dict[int, list[tuple[int, asyncio.Future[None]]]] = {}
        self._stepping: set[int] = set()
        #: In-process children this engine counted already: their completion needs no query.
        self._counted: LruCache[int, bool] = LruCache(COUNTED_MEMORY)
        #: Deferred children this engine ran: their ExecutionRequested, possibly still queued
        #: behind thousands of others, needs no scheduling (not even the admission check).
        self._ran: LruCache[int, bool] = LruCache(COUNTED_MEMORY)
        self._drains: set[asyncio.Task[None]] = set()
        #: Schedules an execution on a worker (the scheduler sets it): deferred tasks whose own
        #: step failed go there.
        self.schedule_fallback: Callable[[int], Awaitable[None]] | None = None
        #: Set when this engine wrote a run with timers: the timer loop recomputes its sleep.
        self._wake = asyncio.Event()

    def context(self) -> WorkflowContext:
        """A fresh command context sharing this engine's caches."""
        settings = self._platform.settings
        inline = inline_tasks.InlineTasks(
            box=self._platform.secrets,
            source=SOURCE,
            budget=inline_tasks.BUDGET,
            enabled=settings.worker.in_process_actions,
            heartbeat_interval=settings.worker.heartbeat_interval,
            alive=self._platform.local_workers,
            warned=self._warned,
        )
        return WorkflowContext(
            box=self._platform.secrets,
            engine=self._engine,
            specs=self._specs,
            states=self._states,
            inline=inline,
            clock=self._platform.clock,
        )

    def deferring(self, execution_id: int) -> bool:
        """True when this engine runs execution ``execution_id`` itself shortly (the scheduler
        leaves it alone; after a crash it is recovered like any requested execution), or ran
        it already."""
        return execution_id in self._deferring or self._ran.get(execution_id) is not None

    def _drain(self, ctx: WorkflowContext) -> None:
        """After a commit: run the children that step deferred, in a step of their own."""
        if ctx.inline is None or not ctx.inline.deferred_ids:
            return
        for state_id, ids in ctx.inline.deferred_ids.items():
            self._spawn_deferred(state_id, ids)
        ctx.inline.deferred_ids = {}

    def _spawn_deferred(self, state_id: int, ids: list[int]) -> None:
        self._deferring.update(ids)
        task = asyncio.create_task(self._run_deferred(state_id, ids), name=f"workflow-{state_id}-deferred")
        self._drains.add(task)
        task.add_done_callback(self._drains.discard)

    async def _run_deferred(self, state_id: int, ids: list[int]) -> None:
        """Run deferred children in steps of at most the in-process budget each, one transaction
        per step, so a large ``with_items`` never holds the database (SQLite's one writer) for
        the whole batch."""
        budget = max(1, inline_tasks.BUDGET)
        for start in range(0, len(ids), budget):
            chunk = ids[start : start + budget]
            try:
                ctx = self.context()
                async with self._platform.db.transaction() as session:
                    await advance_deferred(session, state_id, chunk, ctx)
                self._remember(ctx)
            except Exception:
                # They stay requested: the scheduler hands them to a worker instead.
                log.exception("running deferred tasks of workflow run %s failed", state_id)
                rest = ids[start:]
                self._deferring.difference_update(rest)
                if self.schedule_fallback is not None:
                    for execution_id in rest:
                        await self.schedule_fallback(execution_id)
                return
            self._deferring.difference_update(chunk)

    def _remember(self, ctx: WorkflowContext) -> None:
        """Called once ``ctx``'s transaction has committed."""
        if ctx.inline is not None:
            for execution_id in ctx.inline.counted_ids:
                self._counted.put(execution_id, True)
                self._ran.put(execution_id, True)
            ctx.inline.counted_ids = []
        self._drain(ctx)
        for written in ctx.written:
            self._known[written.state_id] = (written.updated, written.timers)
            if written.timers:
                self._wake.set()
            if written.state.finished:
                self._states.forget(written.state_id)
            else:
                self._states.put(written.state_id, written.stamp, written.state)

    async def start(self, execution_id: int) -> None:
        """Start the workflow run of execution ``execution_id`` (scheduler hand-off)."""
        ctx = self.context()
        async with self._platform.db.transaction() as session:
            execution = await session.get(Execution, execution_id)
            if execution is None:
                return
            action = await session.get(Action, execution.action) if execution.action is not None else None
            if action is None:
                action = await repo.action_by_ref(session, execution.action_ref)
            if action is None:
                return
            await start_workflow(session, execution, action, ctx)
        self._remember(ctx)

    async def child_finished(self, execution_id: int) -> None:
        """Advance the workflow run a finished execution belongs to (no-op for other executions)."""
        if self._counted.pop(execution_id):
            return  # an in-process task counted in the step that ran it
        async with self._platform.db.session() as session:
            state_id, task = await repo.child_link(session, execution_id)
        if state_id is None or (isinstance(task, dict) and task.get("counted")):
            # Not a workflow child, or counted already (an in-process task is counted in the step
            # that ran it): no write transaction (and no SQLite write lock) needed.
            return
        # Children of one run that finish meanwhile are counted together: one transaction, one
        # load and one write of the run per batch instead of one per child.
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._finishing.setdefault(state_id, []).append((execution_id, done))
        if state_id not in self._stepping:
            self._stepping.add(state_id)
            try:
                while batch := self._finishing.pop(state_id, None):
                    await self._count_batch(state_id, batch)
            finally:
                self._stepping.discard(state_id)
                # Interrupted (shutdown): whoever still waits fails and is delivered again.
                for _, waiting in self._finishing.pop(state_id, []):
                    if not waiting.done():
                        waiting.set_exception(RuntimeError(f"the step of workflow run {state_id} stopped"))
        await done

    async def _count_batch(self, state_id: int, batch: list[tuple[int, asyncio.Future[None]]]) -> None:
        ctx = self.context()
        try:
            async with self._platform.db.transaction() as session:
                await advance_children(session, state_id, [execution_id for execution_id, _ in batch], ctx)
        except BaseException as exc:
            # Every completion of the batch fails and is delivered again.
            for _, done in batch:
                if not done.done():
                    done.set_exception(exc if isinstance(exc, Exception) else RuntimeError("interrupted"))
            if not isinstance(exc, Exception):
                raise
            return
        self._remember(ctx)
        for _, done in batch:
            if not done.done():
                done.set_result(None)

    async def sweep_timers(self) -> int:
        """One timer-loop pass that reads the running runs first; returns how many timers fired."""
        async with self._platform.db.session() as session:
            running = await repo.running_states(session)
            stale = [sid for sid, updated in running if self._known.get(sid, (None, []))[0] != updated]
            if stale:
                for sid, updated, variables in await repo.state_variables(session, stale):
                    timers = (variables or {}).get(TIMERS_KEY) or [] if isinstance(variables, dict) else []
                    self._known[sid] = (updated, [t for t in timers if isinstance(t, dict)])
        live = {sid for sid, _ in running}
        for sid in list(self._known):
            if sid not in live:
                del self._known[sid]
        return await self.fire_due()

    async def fire_due(self) -> int:
        """Fire the known timers that are due (no read of the running runs); returns how many."""
        now = self._platform.clock.now()
        fired = 0
        for sid, (_, timers) in list(self._known.items()):
            for timer in sorted(timers, key=_due):
                if _due(timer) > now:
                    break
                ctx = self.context()
                left: list[int] | None = None
                async with self._platform.db.transaction() as session:
                    if inline_tasks.is_deferred_timer(timer):
                        # The deferred children's steps never came (docs/performance.md).
                        left = await fire_deferred(session, sid, timer, ctx)
                        fired += left is not None
                    elif await fire_timer(session, sid, timer, ctx):
                        fired += 1
                self._remember(ctx)
                waiting = [execution_id for execution_id in left or [] if execution_id not in self._deferring]
                if waiting:
                    log.warning("workflow run %s: running %d deferred task(s) left behind", sid, len(waiting))
                    self._spawn_deferred(sid, waiting)
                if not ctx.written:
                    # Already fired elsewhere: forget it so the next pass re-reads the row.
                    self._known.pop(sid, None)
                    break
        return fired

    def next_due(self) -> datetime | None:
        """When the earliest timer this engine knows of is due (None: it knows none)."""
        dues = [_due(timer) for _, timers in self._known.values() for timer in timers]
        return min(dues, default=None)

    async def run_timers(self, stop: asyncio.Event) -> None:
        """The timer loop: fire timers when due, read the running runs every ``RESCAN_INTERVAL``."""
        clock = self._platform.clock
        rescan_at = clock.monotonic()
        while not stop.is_set():
            self._wake.clear()
            floor = MIN_SLEEP
            try:
                if clock.monotonic() >= rescan_at:
                    rescan_at = clock.monotonic() + RESCAN_INTERVAL
                    await self.sweep_timers()
                else:
                    await self.fire_due()
            except Exception:
                log.exception("workflow timers failed; trying again next round")
                floor = TIMER_INTERVAL  # a timer that cannot fire is not retried in a tight loop
            delay = rescan_at - clock.monotonic()
            due = self.next_due()
            if due is not None:
                delay = min(delay, (due - clock.now()).total_seconds())
            if self._wake.is_set() and floor == MIN_SLEEP:
                continue  # a run with timers was written during the pass
            await clock.wait(self._wake, max(delay, floor))
