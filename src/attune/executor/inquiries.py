"""The inquiry timeout sweep (docs/operations.md "Timeout loop", with its **Implement**).

Pending inquiries whose ``timeout_at`` has passed become ``timeout`` and the execution waiting on
each one ends as ``timeout`` with ``error = "Inquiry <id> timed out"`` (``ExecutionCompleted``
staged, so a workflow advances). Each inquiry is settled in its own transaction with the row
locked, so a concurrent answer either wins (the sweep then skips it) or sees the inquiry already
timed out.

When (docs/inquiries.md "Expiry, cancel, delete"; docs/performance.md "An idle server that
sleeps"): the loop (:meth:`InquiryTimeoutMonitor.run`) sleeps until the earliest deadline of a
pending inquiry. An inquiry committed in this process (the embedded server's worker, API or
workflow engine) wakes it through the database's after-commit hook, so its deadline is kept to
the clock; the table is read again every :data:`RESCAN_INTERVAL` seconds for inquiries written by
other processes (the scaled deployment's workers and API), which time out at most that late.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

from attune.db.outbox import STAGED
from attune.db.repos import inquiries as repo
from attune.messaging.messages import MessageType
from attune.operations import inquiries
from attune.platform import Platform

log = logging.getLogger(__name__)

#: Seconds between two reads of the pending inquiries while none of this process is due: the
#: longest an inquiry written by another process waits past its ``timeout_at``.
RESCAN_INTERVAL = 5.0
#: Seconds before a pass that could not time an inquiry out is tried again.
RETRY_INTERVAL = 1.0
#: The shortest sleep of the loop (a deadline due now is handled in the next pass).
MIN_SLEEP = 0.01
#: Inquiries timed out per pass (more: the next pass follows at once).
BATCH = 100

_CREATED = str(MessageType.INQUIRY_CREATED)


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


class InquiryTimeoutMonitor:
    """Expires pending inquiries past their ``timeout_at``."""

    def __init__(self, platform: Platform) -> None:
        self._platform = platform
        #: The earliest deadline of a pending inquiry this monitor knows of (None: none known).
        self._next_due: datetime | None = None
        #: Deadlines committed in this process since the current read began (it may miss them).
        self._noted: datetime | None = None
        self._wake = asyncio.Event()
        self._listening = False
        #: The last pass could not time every due inquiry out: the loop retries after a pause.
        self._failed = False

    @property
    def next_due(self) -> datetime | None:
        """When the earliest pending inquiry it knows of times out."""
        return self._next_due

    def _after_commit(self, info: dict[Any, Any]) -> None:
        """After-commit hook: note the deadline of every inquiry the transaction created."""
        for row in info.get(STAGED, ()):
            if row.get("message_type") != _CREATED:
                continue
            raw = (row.get("body") or {}).get("payload", {}).get("timeout_at")
            if raw is None:
                continue
            try:
                deadline = datetime.fromisoformat(str(raw))
            except ValueError:
                deadline = self._platform.clock.now()  # unreadable: look at the table now
            self._noted = _earliest(self._noted, deadline)
            self._next_due = _earliest(self._next_due, deadline)
            self._wake.set()

    async def sweep(self) -> int:
        """One pass (up to :data:`BATCH` inquiries); returns how many timed out. Also reads the
        next deadline after them, which :meth:`run` sleeps until."""
        db = self._platform.db
        clock = self._platform.clock
        self._noted = None
        now = clock.now()
        async with db.session() as session:
            ids = await repo.expired_ids(session, now, limit=BATCH)
            upcoming = await repo.next_deadline(session, now)
        count = 0
        failed = False
        for inquiry_id in ids:
            try:
                async with db.transaction() as session:
                    if await inquiries.expire_if_due(session, inquiry_id, clock.now()):
                        count += 1
            except Exception:
                failed = True
                log.exception("could not time out inquiry %s", inquiry_id)
        if len(ids) == BATCH or failed:
            upcoming = now  # more are due (or one is left): the next pass follows
        self._next_due = _earliest(upcoming, self._noted)
        self._failed = failed
        return count

    async def run(self, stop: asyncio.Event) -> None:
        """The loop: time inquiries out when due; read the table every ``RESCAN_INTERVAL``."""
        if not self._listening:
            self._platform.db.add_after_commit(self._after_commit)
            self._listening = True
        clock = self._platform.clock
        rescan_at = clock.monotonic()
        while not stop.is_set():
            self._wake.clear()
            floor = MIN_SLEEP
            due = self._next_due is not None and self._next_due <= clock.now()
            if due or clock.monotonic() >= rescan_at:
                rescan_at = clock.monotonic() + RESCAN_INTERVAL
                try:
                    await self.sweep()
                except Exception:
                    log.exception("inquiry timeout sweep failed; trying again")
                    self._failed = True
                if self._failed:
                    floor = RETRY_INTERVAL
            delay = rescan_at - clock.monotonic()
            if self._next_due is not None:
                delay = min(delay, (self._next_due - clock.now()).total_seconds())
            if self._wake.is_set() and floor == MIN_SLEEP:
                continue  # an inquiry was created during the pass
            await clock.wait(self._wake, max(delay, floor))
