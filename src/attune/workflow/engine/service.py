"""The executor's workflow component: starts runs, advances them, fires their timers.

It owns the caches shared by the steps it takes (parsed specs, the states it wrote last) and
batches the completions of one run into one step.
"""

from __future__ import annotations

import asyncio
import logging
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
    continue_run,
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
        #: Runs a background step of this engine is about to continue (tasks held for room).
        self._continuing: set[int] = set()
        self._warned: LruCache[tuple[int, str], bool] = LruCache(1024)
        #: Completions waiting for the step of their run, and the runs being stepped.
        self._finishing: dict[int, list[tuple[int, asyncio.Future[None]]]] = {}
        self._stepping: set[int] = set()
        self._drains: set[asyncio.Task[None]] = set()
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

    def _drain(self, ctx: WorkflowContext) -> None:
        """After a commit: continue the runs whose step held tasks back for lack of room, each in
        a transaction of its own (one continuation per run at a time)."""
        if ctx.inline is None or not ctx.inline.held:
            return
        held, ctx.inline.held = ctx.inline.held, set()
        for state_id in sorted(held - self._continuing):
            self._continuing.add(state_id)
            task = asyncio.create_task(self._continue(state_id), name=f"workflow-{state_id}-continue")
            self._drains.add(task)
            task.add_done_callback(self._drains.discard)

    async def _continue(self, state_id: int) -> None:
        ctx = self.context()
        try:
            async with self._platform.db.transaction() as session:
                await continue_run(session, state_id, ctx)
        except Exception:
            # The run's deferred timer continues it after its grace.
            log.exception("continuing workflow run %s failed", state_id)
            return
        finally:
            self._continuing.discard(state_id)
        self.remember(ctx)  # continues it again while tasks are still held

    def remember(self, ctx: WorkflowContext) -> None:
        """Called once ``ctx``'s transaction has committed."""
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
        self.remember(ctx)

    async def child_finished(self, execution_id: int) -> None:
        """Advance the workflow run a finished execution belongs to (no-op for other executions)."""
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
        self.remember(ctx)
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
                async with self._platform.db.transaction() as session:
                    if await fire_timer(session, sid, timer, ctx):
                        fired += 1
                self.remember(ctx)
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
