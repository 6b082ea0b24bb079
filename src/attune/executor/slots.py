"""Per-action concurrency slots with FIFO waiting (docs/operations.md).

One :class:`SlotManager` lives in each executor process. For every action it keeps the number of
executions holding a slot (``active_count``) and a FIFO of tickets waiting for one. Waiting is a
plain :class:`asyncio.Future` per ticket, so a full action never blocks the consumer of other
actions' messages (the head-of-line blocking the spec's reimplementation notes warn about).

The state is in memory: it assumes a single executor instance. ``queue_stats`` rows mirror it
for the API (:class:`StatsWriter`, docs/policies.md "Queue statistics").
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from attune.db.database import Database
from attune.db.repos import policies
from attune.db.types import utcnow

log = logging.getLogger(__name__)

QUEUE_FULL = "queue full"
LIMIT_REACHED = "concurrency limit reached"
QUEUE_TIMEOUT = "queue timeout"
CANCELLED = "cancelled"


class PolicyRejected(Exception):
    """A ticket did not get a slot. ``reason`` is one of ``queue full``, ``concurrency limit
    reached`` (method ``cancel``), ``queue timeout`` or ``cancelled``; the message starts with it."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True)
class QueueSnapshot:
    """The counters of one action's queue, as stored in ``queue_stats``.

    ``max_concurrent`` is 0 when the action has no concurrency limit.
    """

    queue_length: int
    active_count: int
    max_concurrent: int
    oldest_enqueued_at: datetime | None
    total_enqueued: int
    total_completed: int


def _place(waiters: deque[_Waiter], ticket: int) -> int:
    """Where a new waiter joins the FIFO: at the end, but ahead of the enforcements created after
    it (positive tickets are enforcement ids). Events are handled concurrently, so an older
    enforcement's transaction may commit, and its ticket arrive, after a newer one's; the queue
    stays in enforcement order. Manual runs (negative tickets) keep their arrival place."""
    index = len(waiters)
    if ticket > 0:
        while index > 0 and waiters[index - 1].ticket > ticket:
            index -= 1
    return index


@dataclass(eq=False)
class _Waiter:
    ticket: int
    future: asyncio.Future[None]
    enqueued_at: datetime


@dataclass
class _ActionQueue:
    waiters: deque[_Waiter] = field(default_factory=deque)
    active: int = 0
    limit: int | None = None
    total_enqueued: int = 0
    total_completed: int = 0

    def has_room(self) -> bool:
        return self.limit is None or self.active < self.limit


class SlotManager:
    """Concurrency slots and FIFO queues for every action, in one executor process."""

    def __init__(self, *, max_queue_length: int = 10000, queue_timeout: float = 3600) -> None:
        self.max_queue_length = max_queue_length
        self.queue_timeout = queue_timeout
        self._queues: dict[int, _ActionQueue] = {}
        self._dirty: set[int] = set()

    def _queue(self, action_id: int) -> _ActionQueue:
        queue = self._queues.get(action_id)
        if queue is None:
            queue = self._queues[action_id] = _ActionQueue()
        return queue

    def _hand_over(self, action_id: int, queue: _ActionQueue) -> None:
        """Give free slots to the oldest waiters; each slot is counted before its waiter wakes."""
        while queue.waiters and queue.has_room():
            waiter = queue.waiters.popleft()
            if waiter.future.done():  # its acquire already gave up
                continue
            queue.active += 1
            waiter.future.set_result(None)
        self._dirty.add(action_id)

    async def acquire(
        self, action_id: int, limit: int | None, ticket: int, *, method: str = "enqueue"
    ) -> None:
        """Take a slot for ``ticket``, waiting in FIFO order when the action is at ``limit``.

        ``limit`` is the action's current concurrency limit (``None`` = unlimited, still counted)
        and replaces the previous one. With ``method="cancel"`` a full action rejects at once.
        Raises :class:`PolicyRejected` when rejected, the queue is full, the wait exceeds
        ``queue_timeout`` or :meth:`cancel` drops the ticket. On return the caller holds a slot
        and must :meth:`release` it when the execution completes.
        """
        queue = self._queue(action_id)
        queue.limit = limit
        # A raised (or removed) limit may free room for tickets that are already waiting; they go first.
        self._hand_over(action_id, queue)
        if not queue.waiters and queue.has_room():
            queue.active += 1
            queue.total_enqueued += 1
            return
        if method == "cancel":
            raise PolicyRejected(LIMIT_REACHED, f"action {action_id} already runs {queue.active} of {limit}")
        if len(queue.waiters) >= self.max_queue_length:
            raise PolicyRejected(
                QUEUE_FULL, f"{len(queue.waiters)} tickets already wait for action {action_id}"
            )
        waiter = _Waiter(ticket, asyncio.get_running_loop().create_future(), utcnow())
        queue.waiters.insert(_place(queue.waiters, ticket), waiter)
        queue.total_enqueued += 1
        try:
            await asyncio.wait({waiter.future}, timeout=self.queue_timeout)
        except asyncio.CancelledError:
            self._abandon(action_id, queue, waiter)
            raise
        if not waiter.future.done():
            self._abandon(action_id, queue, waiter)
            raise PolicyRejected(
                QUEUE_TIMEOUT, f"no slot for action {action_id} within {self.queue_timeout:g} s"
            )
        waiter.future.result()  # raises PolicyRejected when cancel() dropped the ticket

    def hold(self, action_id: int) -> None:
        """Count a slot of an action that has no concurrency limit (never waits).

        What ``acquire(action_id, None, ticket)`` does, synchronously, for a caller inside a
        database transaction (the fast path, docs/performance.md).
        """
        queue = self._queue(action_id)
        queue.limit = None
        self._hand_over(action_id, queue)
        queue.active += 1
        queue.total_enqueued += 1

    def _abandon(self, action_id: int, queue: _ActionQueue, waiter: _Waiter) -> None:
        """The waiting acquire stops waiting: leave the FIFO, or return a slot handed over meanwhile."""
        future = waiter.future
        if future.done() and not future.cancelled() and future.exception() is None:
            queue.active = max(queue.active - 1, 0)
            self._hand_over(action_id, queue)
            return
        if waiter in queue.waiters:
            queue.waiters.remove(waiter)
        if not future.done():
            future.cancel()
        self._dirty.add(action_id)

    def release(self, action_id: int) -> None:
        """One execution of ``action_id`` completed: free its slot and wake the oldest waiter.

        Never drops below zero, so completions of executions that took no slot (or took it in an
        earlier executor process) are harmless. Unknown actions are ignored.
        """
        queue = self._queues.get(action_id)
        if queue is None:
            return
        queue.active = max(queue.active - 1, 0)
        queue.total_completed += 1
        self._hand_over(action_id, queue)

    def cancel(self, ticket: int) -> bool:
        """Drop ``ticket`` from every FIFO it waits in; its acquire raises ``PolicyRejected("cancelled")``.

        Returns False when the ticket is not waiting (it already holds a slot or never queued).
        """
        found = False
        for action_id, queue in self._queues.items():
            for waiter in [w for w in queue.waiters if w.ticket == ticket and not w.future.done()]:
                queue.waiters.remove(waiter)
                waiter.future.set_exception(PolicyRejected(CANCELLED, f"ticket {ticket} was cancelled"))
                self._dirty.add(action_id)
                found = True
        return found

    def snapshot(self, action_id: int) -> QueueSnapshot:
        """The current counters of ``action_id`` (all zero for an action never seen)."""
        queue = self._queues.get(action_id) or _ActionQueue()
        return QueueSnapshot(
            queue_length=len(queue.waiters),
            active_count=queue.active,
            max_concurrent=queue.limit or 0,
            oldest_enqueued_at=queue.waiters[0].enqueued_at if queue.waiters else None,
            total_enqueued=queue.total_enqueued,
            total_completed=queue.total_completed,
        )

    def dirty_actions(self) -> set[int]:
        """Actions whose counters changed since the previous call (then forgets them)."""
        dirty, self._dirty = self._dirty, set()
        return dirty


async def persist_stats(session: AsyncSession, snapshots: Mapping[int, QueueSnapshot]) -> None:
    """Upsert ``queue_stats`` rows (docs/development.md): every counter is replaced, ``last_updated`` stamped.

    Actions that no longer exist are skipped (their row would violate the FK).
    """
    now = utcnow()
    await policies.save_queue_stats(
        session,
        {
            action_id: {
                "queue_length": snap.queue_length,
                "active_count": snap.active_count,
                "max_concurrent": snap.max_concurrent,
                "oldest_enqueued_at": snap.oldest_enqueued_at,
                "total_enqueued": snap.total_enqueued,
                "total_completed": snap.total_completed,
                "last_updated": now,
            }
            for action_id, snap in snapshots.items()
        },
    )


class StatsWriter:
    """Mirrors the counters a :class:`SlotManager` changed into ``queue_stats``.

    A change is written ``interval`` seconds later, together with every change made meanwhile:
    one write transaction per interval instead of one per slot taken or freed (statistics, so a
    short delay is fine; docs/policies.md). :meth:`close` writes what is pending. After a crash
    nothing is wrong for long: the next executor counts the open executions again and writes
    them at start (:meth:`~attune.executor.enforcements.EnforcementProcessor.recover`).

    The delay runs on the event loop's time, not the platform clock: it batches writes and means
    nothing to the behaviour tests drive with a fake clock (docs/development.md "Time in tests").
    """

    def __init__(self, slots: SlotManager, db: Database, *, interval: float = 1.0) -> None:
        self._slots = slots
        self._db = db
        self._interval = interval
        self._lock = asyncio.Lock()
        self._pending: asyncio.Task[None] | None = None

    def changed(self) -> None:
        """Counters changed: write them within ``interval`` seconds (at most one write is pending)."""
        if self._pending is None:
            self._pending = asyncio.get_running_loop().create_task(self._later(), name="queue-stats")

    async def _later(self) -> None:
        await asyncio.sleep(self._interval)
        # Cleared before writing: a change made while this write runs schedules the next one.
        self._pending = None
        await self.write()

    async def write(self) -> None:
        """Store the counters that changed, now."""
        # Serialised, with the snapshot taken inside the lock: a slower writer can never store
        # older counters over newer ones.
        async with self._lock:
            dirty = self._slots.dirty_actions()
            if not dirty:
                return
            snapshots = {action_id: self._slots.snapshot(action_id) for action_id in dirty}
            try:
                async with self._db.transaction() as session:
                    await persist_stats(session, snapshots)
            except Exception:
                # Statistics are informative; losing one update must not fail the pipeline.
                log.exception("could not persist queue statistics")

    async def close(self) -> None:
        """Write what is pending (a clean stop keeps the last counters)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)
        await self.write()
