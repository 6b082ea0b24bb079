"""The inquiry timeout sweep (docs/operations.md "Timeout loop", with its **Implement**).

Every :data:`INTERVAL` seconds, pending inquiries whose ``timeout_at`` has passed become
``timeout`` and the execution waiting on each one ends as ``timeout`` with
``error = "Inquiry <id> timed out"`` (``ExecutionCompleted`` staged, so a workflow advances).
Each inquiry is settled in its own transaction with the row locked, so a concurrent answer
either wins (the sweep then skips it) or sees the inquiry already timed out.
"""

from __future__ import annotations

import logging

from attune.db.repos import inquiries as repo
from attune.operations import inquiries
from attune.platform import Platform

log = logging.getLogger(__name__)

#: Seconds between two sweeps: a short TTL (a few seconds) must be honoured promptly.
INTERVAL = 1.0


class InquiryTimeoutMonitor:
    """Expires pending inquiries past their ``timeout_at``."""

    def __init__(self, platform: Platform, *, interval: float = INTERVAL) -> None:
        self._platform = platform
        self._interval = interval

    @property
    def interval(self) -> float:
        """Seconds between two sweeps."""
        return self._interval

    async def sweep(self) -> int:
        """One pass (up to 100 inquiries); returns how many timed out."""
        db = self._platform.db
        async with db.session() as session:
            ids = await repo.expired_ids(session, self._platform.clock.now())
        count = 0
        for inquiry_id in ids:
            try:
                async with db.transaction() as session:
                    if await inquiries.expire_if_due(session, inquiry_id, self._platform.clock.now()):
                        count += 1
            except Exception:
                log.exception("could not time out inquiry %s", inquiry_id)
        return count
