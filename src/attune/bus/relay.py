"""Relays committed outbox rows to the bus.

Fast path: the rows a transaction staged are remembered in its session (``outbox.note_staged``);
right after the commit the relay publishes them from memory, in commit order. No database round
trip sits between a commit and its messages.

When a row is deleted depends on the bus (docs/operations.md, "Guarantees"):

* a durable bus (RabbitMQ: persistent messages, confirmed publishes) holds the message once the
  broker has confirmed it, so the row is deleted then. The relay hands it what is ready as one
  batch (``Bus.publish_many``: sent back to back, confirms awaited together), so a message does
  not wait for the confirms of those committed before it. Only rows whose own confirm arrived
  count as published; a refused or lost one goes back to the head of the queue, ahead of
  everything not yet sent and in its original order, and is sent again on the next round. (A
  later message of the same batch that the broker did take is not held back for it: it may reach
  its queue before the retried one — what pipelining costs, and only when the broker refuses
  or loses a single message.)
* a bus that lives in this process (``memory://``, the embedded deployment) would lose it in a
  crash, so the row stays until the bus reports every copy *settled* — acknowledged by a
  consumer whose transaction has committed (``SettlingBus``). A crash before that re-sends it.

Deletes are batched — at most every ``delete_delay`` seconds (1 s), in one transaction, so the
delete does not take the (SQLite: single) write lock between a message and the consumer that
handles it, and costs one write per second rather than one per run. A crash re-sends at most
that second's settled messages, which the idempotent consumers ignore.

Safety net: on start the relay sends every row already in the table (what was accepted but not
consumed before a crash or a stop), and then it scans for rows older than ``orphan_age`` it is not
already handling — left behind by a crash between commit and publish, or by another process that
stopped (``SKIP LOCKED`` on PostgreSQL, so several relays can share the table). The scans back off
while they find nothing: ``poll_interval`` (1 s) after the start, then twice as long after each
empty scan up to ``max_poll_interval`` (10 s); a scan that sends something, or a failure, brings
the interval back to ``poll_interval``. So an idle process does not take a transaction every
second, and a row orphaned by another process is sent at most ``orphan_age + max_poll_interval``
(20 s) after its commit (docs/operations.md, "Guarantees"; docs/performance.md, "An idle server
that sleeps"). Rows of this process whose publish failed are retried ``poll_interval`` after the
failure, not at the backed-off pace.

Delivery is at-least-once: a crash between settlement and delete re-sends the row, so consumers
are idempotent.

Time: the poll and delete timers run on the relay's :class:`~attune.clock.Clock` (the one the
process's platform was opened with, docs/development.md "Time in tests"). The orphan cut-off is
compared with ``outbox.created``, a column default stamped by the system clock, so it stays on the
system clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from datetime import datetime, timedelta
from typing import Any

from attune.bus.base import Bus, SettlingBus
from attune.clock import Clock, SystemClock
from attune.db.database import Database
from attune.db.outbox import STAGED
from attune.db.repos import outbox as outbox_rows
from attune.db.types import utcnow
from attune.messaging import topology
from attune.messaging.messages import Envelope

log = logging.getLogger(__name__)


class OutboxRelay:
    """Publishes outbox rows after commit. ``kick()`` wakes it; it also polls as a safety net."""

    def __init__(
        self,
        db: Database,
        bus: Bus,
        *,
        batch_size: int = 200,
        poll_interval: float = 1.0,
        max_poll_interval: float = 10.0,
        orphan_age: float = 10.0,
        delete_delay: float = 1.0,
        clock: Clock | None = None,
    ) -> None:
        self._db = db
        self._clock: Clock = clock or SystemClock()
        self._bus = bus
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._max_poll_interval = max(max_poll_interval, poll_interval)
        #: Rows the current scan handed to the bus (an empty scan backs the next one off).
        self._scan_sent = 0
        self._orphan_age = orphan_age
        # Must stay well below ``orphan_age``: a published row older than that is sent again.
        self._delete_delay = min(delete_delay, orphan_age / 4)
        self._ready: deque[dict[str, Any]] = deque()
        self._published: list[str] = []
        self._delete_due: float | None = None
        self._delete_now = False
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._paused = False
        # A bus that is not durable: rows wait for settlement; ids published and not yet settled.
        self._settling = isinstance(bus, SettlingBus) and not bus.durable
        self._in_flight: set[str] = set()
        if isinstance(bus, SettlingBus) and self._settling:
            bus.add_settle_listener(self._on_settled)
        db.add_after_commit(self._after_commit)

    @property
    def settling(self) -> bool:
        """True when rows are deleted on settlement rather than on publish."""
        return self._settling

    def _on_settled(self, message_id: str) -> None:
        # Only rows this relay sent; a message published otherwise has no row to delete.
        if message_id in self._in_flight:
            self._in_flight.discard(message_id)
            self._published.append(message_id)
            self.kick()

    def pause(self) -> None:
        """Stop publishing (tests use it to inspect staged rows); committed rows stay in the table."""
        self._paused = True
        self._ready.clear()

    def _after_commit(self, info: dict[Any, Any]) -> None:
        staged = info.get(STAGED)
        if staged and not self._paused:
            self._ready.extend(staged)
            self.kick()

    def kick(self) -> None:
        self._idle.clear()
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Loop until ``stop`` is set: publish what was just committed, then clean up and scan."""
        clock = self._clock
        # Rows already in the table when this relay starts were never going to be published by it:
        # the first scan takes those, later scans only rows older than ``orphan_age``. Younger rows
        # belong to a fast path (ours or another process's) and scanning them would send twice.
        started = utcnow()
        first_scan = True
        # ``stop`` wakes the loop: it must not depend on the poll timer running out (a fake clock's
        # timer runs out only when the test advances it).
        stopper = asyncio.create_task(self._wake_on(stop))
        try:
            await self._loop(stop, started, first_scan, clock)
        finally:
            stopper.cancel()
        with contextlib.suppress(Exception):
            await self._delete_published()  # so the next start does not send them again

    async def _wake_on(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._wake.set()

    async def _loop(self, stop: asyncio.Event, started: datetime, first_scan: bool, clock: Clock) -> None:
        next_scan = clock.monotonic()
        interval = self._poll_interval
        while not stop.is_set():
            now = clock.monotonic()
            # The first scan (rows left from before the start) waits for the first kick or one
            # ``poll_interval``; later ones run when due. Ready rows are left only by a failed
            # publish, retried without waiting for the next scan.
            wait = self._poll_interval if first_scan else max(0.0, next_scan - now)
            if self._ready:
                wait = 0.0
            if self._paused:
                wait = self._max_poll_interval  # nothing to do until stopped
            if self._delete_due is not None:
                wait = max(0.0, min(wait, self._delete_due - now))
            await clock.wait(self._wake, wait)
            self._wake.clear()
            if self._paused:
                continue
            try:
                await self._publish_ready()
                if self._published and self._delete_due is None:
                    self._delete_due = clock.monotonic() + self._delete_delay
                scan = clock.monotonic() >= next_scan
                # Before a scan, too: it must not find (and send again) what was just published.
                due = self._delete_due is not None and clock.monotonic() >= self._delete_due
                if self._delete_now or due or (scan and self._published):
                    self._delete_now = False
                    await self._delete_published()
                if scan:
                    backed_off = interval
                    # A scan that fails (or sends something) is followed at the first interval.
                    interval = self._poll_interval
                    next_scan = clock.monotonic() + interval
                    cutoff = started if first_scan else utcnow() - timedelta(seconds=self._orphan_age)
                    self._scan_sent = 0
                    await self._scan(cutoff)
                    first_scan = False
                    if self._scan_sent == 0:  # nothing found: back off
                        interval = min(2 * backed_off, self._max_poll_interval)
                        next_scan = clock.monotonic() + interval
            except Exception:
                log.exception("outbox relay failed; retrying")
                interval = self._poll_interval
                next_scan = min(next_scan, clock.monotonic() + interval)
                await clock.wait(stop, self._poll_interval)
                continue
            if not self._wake.is_set() and not self._ready and not self._delete_now:
                self._idle.set()

    async def _publish_ready(self) -> None:
        if not self._settling:
            while self._ready:
                await self._publish_batch()
            return
        sent = 0
        while self._ready:
            row = self._ready[0]
            await self._send(row["message_id"], row["exchange"], row["routing_key"], row["body"])
            self._ready.popleft()
            sent += 1
            if sent % 100 == 0:
                # The in-memory bus never suspends: let API requests in between a big batch's messages.
                await asyncio.sleep(0)

    async def _publish_batch(self) -> None:
        """Durable bus: publish the oldest ready rows as one batch; a row counts as published only
        once its own confirm arrived. The others go back to the head of the queue, in order, and
        the first error is raised (the loop retries after ``poll_interval``)."""
        batch = [self._ready.popleft() for _ in range(min(len(self._ready), self._batch_size))]
        try:
            outcomes = await self._bus.publish_many(
                [(row["exchange"], row["routing_key"], Envelope.model_validate(row["body"])) for row in batch]
            )
        except BaseException:
            self._give_back(batch)
            raise
        failed = [row for row, outcome in zip(batch, outcomes, strict=True) if outcome is not None]
        self._published.extend(
            row["message_id"] for row, outcome in zip(batch, outcomes, strict=True) if outcome is None
        )
        if failed:
            self._give_back(failed)
            raise next(outcome for outcome in outcomes if outcome is not None)

    def _give_back(self, rows: list[dict[str, Any]]) -> None:
        """Put unsent rows back at the head of the ready queue, in their order (unless paused:
        then they wait in the table)."""
        if not self._paused:
            self._ready.extendleft(reversed(rows))

    async def _send(self, message_id: str, exchange: str, routing_key: str, body: Any) -> None:
        """Publish one row; on a durable bus its row may go at once, otherwise on settlement."""
        envelope = Envelope.model_validate(body)
        if not self._settling:
            await self._bus.publish(exchange, routing_key, envelope)
            self._published.append(message_id)
            return
        if message_id in self._in_flight:
            return  # the start-up scan and the fast path both saw it
        # Before publishing: a message routed nowhere is settled inside ``publish``.
        self._in_flight.add(message_id)
        try:
            await self._bus.publish(exchange, routing_key, envelope)
        except BaseException:
            self._in_flight.discard(message_id)
            raise

    async def _delete_published(self) -> None:
        self._delete_due = None
        if not self._published:
            return
        done, self._published = self._published, []
        try:
            async with self._db.transaction() as session:
                # IN lists of 500 stay under SQLite's bound-parameter limit.
                for start in range(0, len(done), 500):
                    await outbox_rows.delete_message_ids(session, done[start : start + 500])
        except BaseException:
            self._published[:0] = done  # not deleted: the next round tries again
            raise

    async def drain_once(self, *, created_before: datetime | None = None) -> int:
        """Publish up to one batch of rows (only those created before the cut-off); on a durable
        bus delete them too. Returns how many rows the batch held."""
        if self._settling:
            count, _ = await self._resend_page(created_before, after_id=0)
            return count
        async with self._db.transaction() as session:
            rows = await outbox_rows.claim(session, limit=self._batch_size, created_before=created_before)
            if not rows:
                return 0
            self._scan_sent += len(rows)
            outcomes = await self._bus.publish_many(
                [(row.exchange, row.routing_key, Envelope.model_validate(row.body)) for row in rows]
            )
            confirmed = [row.id for row, outcome in zip(rows, outcomes, strict=True) if outcome is None]
            if confirmed:
                await outbox_rows.delete_ids(session, confirmed)
        failure = next((outcome for outcome in outcomes if outcome is not None), None)
        if failure is not None:
            raise failure  # the unconfirmed rows stay for the next scan
        return len(rows)

    async def _scan(self, created_before: datetime) -> None:
        """Send every row created before the cut-off that is not already on its way."""
        if not self._settling:
            while await self.drain_once(created_before=created_before) == self._batch_size:
                pass
            return
        after_id = 0
        while True:
            count, after_id = await self._resend_page(created_before, after_id=after_id)
            if count < self._batch_size:
                return

    async def _resend_page(self, created_before: datetime | None, *, after_id: int) -> tuple[int, int]:
        """Settling bus: publish one page of rows (by id) that are not in flight; keep the rows."""
        async with self._db.session() as session:
            rows = await outbox_rows.page(
                session, after_id=after_id, limit=self._batch_size, created_before=created_before
            )
        waiting = set(self._published)
        for row in rows:
            if row.message_id in self._in_flight or row.message_id in waiting:
                continue
            # A worker's private queue exists only once that worker starts: declare it first so
            # a dispatch re-sent at start-up waits there instead of being routed nowhere.
            private = topology.private_queue_for(row.exchange, row.routing_key)
            if private is not None:
                await self._bus.declare_queue(private)
            await self._send(row.message_id, row.exchange, row.routing_key, row.body)
            self._scan_sent += 1
        return len(rows), (rows[-1].id if rows else after_id)

    async def flush(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109 - mirrors Bus.join
        """Wait until everything committed so far has been handed to the bus and the rows of what
        is done with deleted (tests, shutdown). On a settling bus, rows of messages nobody has
        handled yet stay."""
        self._delete_now = True
        self.kick()
        await asyncio.wait_for(self._idle.wait(), timeout)

    async def close(self) -> None:
        """Publish what is pending and delete the rows of what is done with (graceful shutdown).

        On a settling bus, what no consumer has finished stays in the table for the next start.
        """
        await self._publish_ready()
        await self._delete_published()
