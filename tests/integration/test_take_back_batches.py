"""A restarted worker takes back its dead predecessor's executions in batches (one transaction
per ``BATCH``, docs/performance.md "Taking back a dead worker's work"), with the outcomes of one
transaction each; one that cannot be settled leaves the others of its batch taken back."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa

from attune.db import models
from attune.operations import orphans
from attune.platform import Platform
from tests.integration.test_worker import add_action, running_worker, shell_runtime
from tests.integration.test_worker_recovery import _busy


async def dead_worker(platform: Platform) -> tuple[models.Action, int]:
    shell = await shell_runtime(platform)
    action = await add_action(platform, "quick", "echo ran", shell)
    async with running_worker(platform, name="lazarus") as first:
        return action, first.id


async def statuses(platform: Platform, ids: list[int]) -> dict[int, str]:
    async with platform.db.session() as session:
        rows = await session.execute(
            sa.select(models.Execution.id, models.Execution.status).where(models.Execution.id.in_(ids))
        )
        return {row[0]: row[1] for row in rows}


def count_transactions(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    opened = [0]
    real = platform.db.transaction

    @contextlib.asynccontextmanager
    async def counted() -> AsyncIterator[Any]:
        opened[0] += 1
        async with real() as session:
            yield session

    monkeypatch.setattr(platform.db, "transaction", counted)
    return opened


async def test_a_backlog_is_taken_back_one_transaction_per_batch(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(orphans, "BATCH", 4)
    action, worker_id = await dead_worker(platform)
    waiting = await _busy(platform, action, worker_id, *["scheduled"] * 4)
    lost = await _busy(platform, action, worker_id, *["running"] * 4)
    stopping = await _busy(platform, action, worker_id, "canceling", "canceling")
    opened = count_transactions(platform, monkeypatch)
    counts = await orphans.take_back(platform.db, worker_id, box=None)
    assert counts == {"rescheduled": 4, "abandoned": 4, "cancelled": 2}
    assert opened[0] == 3  # ten executions, batches of four
    after = await statuses(platform, waiting + lost + stopping)
    assert {after[i] for i in waiting} == {"requested"}
    assert {after[i] for i in lost} == {"abandoned"}
    assert {after[i] for i in stopping} == {"cancelled"}


async def test_one_that_cannot_be_settled_leaves_the_rest_of_its_batch_taken_back(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    action, worker_id = await dead_worker(platform)
    ids = await _busy(platform, action, worker_id, "running", "running", "scheduled")
    broken = ids[1]
    real = orphans.settle_orphan

    async def failing(session: Any, execution: models.Execution, *args: Any, **kwargs: Any) -> str | None:
        outcome = await real(session, execution, *args, **kwargs)
        if execution.id == broken:
            raise RuntimeError("cannot settle this one")
        return outcome

    monkeypatch.setattr(orphans, "settle_orphan", failing)
    counts = await orphans.take_back(platform.db, worker_id, box=None)
    assert counts == {"abandoned": 1, "rescheduled": 1}
    after = await statuses(platform, ids)
    assert after == {ids[0]: "abandoned", broken: "running", ids[2]: "requested"}
