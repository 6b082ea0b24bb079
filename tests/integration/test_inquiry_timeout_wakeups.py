"""The inquiry timeout loop sleeps until a deadline (docs/inquiries.md "Expiry, cancel, delete";
docs/performance.md "An idle server that sleeps"): idle, it reads the pending inquiries only every
``RESCAN_INTERVAL``; an inquiry created in this process wakes it and times out at its deadline
without a read in between; one written by another process times out within the rescan interval."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from attune.db import models
from attune.db.repos import inquiries as repo
from attune.executor import inquiries as monitor_module
from attune.executor.inquiries import InquiryTimeoutMonitor
from attune.platform import Platform
from attune.testing.clock import FakeClock
from tests.integration.background import BackgroundLoop, step
from tests.integration.test_inquiries import _add, _execution, _row, _waiting


class Loop(BackgroundLoop):
    """``InquiryTimeoutMonitor.run`` as a task, counting its reads of the pending inquiries."""

    def __init__(self, platform: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
        self.monitor = InquiryTimeoutMonitor(platform)
        self.reads = 0
        real = repo.expired_ids

        async def counted(session: Any, now: datetime, *, limit: int = 100) -> list[int]:
            self.reads += 1
            return await real(session, now, limit=limit)

        monkeypatch.setattr(repo, "expired_ids", counted)
        super().__init__()

    def start(self) -> None:
        self.start_loop(self.monitor.run)


@pytest.fixture
async def loop(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Loop]:
    platform.relay.pause()  # the staged messages stay (nothing consumes them here)
    running = Loop(platform, monkeypatch)
    yield running
    await running.close()


async def _status(platform: Platform, model: Any, row_id: int) -> str:
    return str((await _row(platform, model, row_id)).status)


async def test_an_idle_loop_reads_the_pending_inquiries_once_per_rescan_interval(
    loop: Loop, fake_clock: FakeClock
) -> None:
    loop.start()
    await fake_clock.sleeping(1)
    assert loop.reads == 1
    for _ in range(4):  # four passes of the old one-second sweep
        await step(fake_clock, 1.0)
    assert loop.reads == 1
    await step(fake_clock, monitor_module.RESCAN_INTERVAL - 4.0)
    assert loop.reads == 2


async def test_an_inquiry_created_in_this_process_times_out_at_its_deadline_without_a_read_before(
    platform: Platform, loop: Loop, fake_clock: FakeClock
) -> None:
    loop.start()
    await fake_clock.sleeping(1)
    execution = await _waiting(platform, {"prompt": "Quick!", "timeout_seconds": 3})
    [inquiry_id] = [row.id for row in await _inquiries(platform, execution.id)]
    deadline = (await _row(platform, models.Inquiry, inquiry_id)).timeout_at
    await step(fake_clock, 0)  # the commit woke the loop: it now sleeps until the deadline
    assert loop.monitor.next_due == deadline
    left = (deadline - fake_clock.now()).total_seconds()
    assert 0 < left < monitor_module.RESCAN_INTERVAL
    await step(fake_clock, left - 0.05)
    assert await _status(platform, models.Inquiry, inquiry_id) == "pending"
    assert loop.reads == 1, "nothing was read while waiting for the deadline"
    await step(fake_clock, 0.06)
    assert await _status(platform, models.Inquiry, inquiry_id) == "timeout"
    assert await _status(platform, models.Execution, execution.id) == "timeout"
    assert loop.reads == 2
    assert loop.monitor.next_due is None


async def test_an_inquiry_written_by_another_process_times_out_within_the_rescan_interval(
    platform: Platform, loop: Loop, fake_clock: FakeClock
) -> None:
    loop.start()
    await fake_clock.sleeping(1)
    execution = await _execution(platform, status="completed")
    # Inserted without staging InquiryCreated here: as if another process had written it.
    inquiry = models.Inquiry(
        execution=execution.id,
        prompt="Elsewhere?",
        status="pending",
        timeout_at=fake_clock.now() + timedelta(seconds=1),
    )
    await _add(platform, inquiry)
    await step(fake_clock, 1.0)
    assert await _status(platform, models.Inquiry, inquiry.id) == "pending", "not known here yet"
    await step(fake_clock, monitor_module.RESCAN_INTERVAL - 1.0)
    assert await _status(platform, models.Inquiry, inquiry.id) == "timeout"


async def _inquiries(platform: Platform, execution_id: int) -> list[models.Inquiry]:
    async with platform.db.session() as session:
        return list((await session.execute(repo.by_execution_query(execution_id))).scalars())
