"""The retention job (docs/development.md): only rows past the cut-off go, table by table, in batches."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from sqlalchemy import event as sa_event
from typer.testing import CliRunner

from attune.cli.main import app as cli
from attune.db import models
from attune.db.types import utcnow
from attune.platform import Platform, open_platform
from attune.retention import PURGED_TABLES, RetentionService, purge
from attune.settings import Settings
from tests.conftest import BACKEND, _truncate_all

DAY = timedelta(days=1)


async def add(platform: Platform, *rows: Any) -> None:
    async with platform.db.transaction() as session:
        session.add_all(rows)


async def ids(platform: Platform, model: Any) -> set[int]:
    async with platform.db.session() as session:
        return set((await session.execute(sa.select(model.id))).scalars())


def history(model: Any, age: timedelta, entity_id: int = 1, operation: str = "UPDATE") -> Any:
    return model(
        time=utcnow() - age,
        operation=operation,
        entity_id=entity_id,
        changed_fields=["status"],
        old_values={"status": "active"},
        new_values={"status": "inactive"},
    )


def execution(age: timedelta, status: str = "completed") -> models.Execution:
    return models.Execution(action_ref="core.echo", status=status, created=utcnow() - age)


@pytest.fixture
def delete_statements(platform: Platform) -> Iterator[list[str]]:
    """The DELETE statements the database receives (to see the batches)."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("DELETE"):
            seen.append(statement)

    engine = platform.db.engine.sync_engine
    sa_event.listen(engine, "before_cursor_execute", record)
    yield seen
    sa_event.remove(engine, "before_cursor_execute", record)


async def test_only_rows_past_the_cutoff_are_deleted(platform: Platform) -> None:
    old, new = 100 * DAY, 10 * DAY
    old_events = [models.Event(trigger_ref="core.timer", created=utcnow() - old) for _ in range(3)]
    new_event = models.Event(trigger_ref="core.timer", created=utcnow() - new)
    old_enf = models.Enforcement(rule_ref="core.r", trigger_ref="core.timer", created=utcnow() - old)
    new_enf = models.Enforcement(rule_ref="core.r", trigger_ref="core.timer", created=utcnow() - new)
    await add(platform, *old_events, new_event, old_enf, new_enf)

    result = await purge(platform, older_than=90 * DAY)

    assert await ids(platform, models.Event) == {new_event.id}
    assert await ids(platform, models.Enforcement) == {new_enf.id}
    assert result["event"] == 3
    assert result["enforcement"] == 1
    assert set(result) == set(PURGED_TABLES)


async def test_only_terminal_executions_are_purged(platform: Platform) -> None:
    old = 100 * DAY
    finished = [
        execution(old, status) for status in ("completed", "failed", "cancelled", "timeout", "abandoned")
    ]
    running, requested = execution(old, "running"), execution(old, "requested")
    recent = execution(DAY, "completed")
    await add(platform, *finished, running, requested, recent)

    result = await purge(platform, older_than=90 * DAY)

    assert result["execution"] == 5
    assert await ids(platform, models.Execution) == {running.id, requested.id, recent.id}


async def test_workflow_run_state_and_items_go_with_their_execution(platform: Platform) -> None:
    old = 100 * DAY
    pack = models.Pack(ref="demo", label="Demo", version="1.0.0")
    await add(platform, pack)
    definition = models.WorkflowDefinition(
        ref="demo.wf", pack=pack.id, pack_ref="demo", label="wf", version="1", definition={"tasks": []}
    )
    gone, kept = execution(old), execution(old, "running")
    await add(platform, definition, gone, kept)
    states = [
        models.WorkflowExecution(
            execution=parent.id, workflow_def=definition.id, task_graph={}, created=utcnow() - old
        )
        for parent in (gone, kept)
    ]
    await add(platform, *states)
    await add(
        platform,
        *[
            models.WorkflowItem(workflow_execution=state.id, task_name="each", item_index=0, item=1)
            for state in states
        ],
    )

    result = await purge(platform, older_than=90 * DAY)

    assert result["execution"] == 1 and result["workflow_execution"] == 1
    assert await ids(platform, models.WorkflowExecution) == {states[1].id}
    async with platform.db.session() as session:
        owners = set((await session.execute(sa.select(models.WorkflowItem.workflow_execution))).scalars())
    assert owners == {states[1].id}, "a purged run's items go with it"


async def test_history_goes_by_time_and_purging_writes_no_new_history(platform: Platform) -> None:
    old_execution = execution(100 * DAY)
    await add(platform, old_execution)
    async with platform.db.session() as session:
        # The INSERT row just recorded for it is recent, so it stays.
        before = set((await session.execute(sa.select(models.ExecutionHistory.id))).scalars())
    old_rows = [history(models.ExecutionHistory, 91 * DAY, entity_id=5) for _ in range(2)]
    fresh = history(models.ExecutionHistory, 89 * DAY, entity_id=5)
    await add(platform, *old_rows, fresh)

    result = await purge(platform, older_than=90 * DAY)

    assert result["execution_history"] == 2
    assert result["execution"] == 1
    # No DELETE row for the purged execution: retention is not a user's change.
    assert await ids(platform, models.ExecutionHistory) == before | {fresh.id}


async def test_worker_history_has_its_own_window(platform: Platform) -> None:
    ancient = history(models.WorkerHistory, 200 * DAY)
    middle = history(models.WorkerHistory, 120 * DAY)
    await add(platform, ancient, middle)

    result = await purge(platform, older_than=90 * DAY, worker_history_older_than=180 * DAY)

    assert result["worker_history"] == 1
    assert await ids(platform, models.WorkerHistory) == {middle.id}
    # Without its own age it follows the main one.
    assert (await purge(platform, older_than=90 * DAY))["worker_history"] == 1


async def test_inquiries_go_only_when_their_execution_is_gone(platform: Platform) -> None:
    purged, kept = execution(100 * DAY), execution(100 * DAY, "running")
    await add(platform, purged, kept)
    created = utcnow() - 100 * DAY
    orphan = models.Inquiry(execution=purged.id, prompt="ok?", created=created)
    attached = models.Inquiry(execution=kept.id, prompt="ok?", created=created)
    recent = models.Inquiry(execution=purged.id, prompt="ok?", created=utcnow() - DAY)
    await add(platform, orphan, attached, recent)

    result = await purge(platform, older_than=90 * DAY)

    assert result["inquiry"] == 1
    assert await ids(platform, models.Inquiry) == {attached.id, recent.id}


async def test_deletes_run_in_batches_until_nothing_is_left(
    platform: Platform, delete_statements: list[str]
) -> None:
    await add(
        platform, *(models.Event(trigger_ref="core.timer", created=utcnow() - 100 * DAY) for _ in range(5))
    )
    keep = models.Event(trigger_ref="core.timer")
    await add(platform, keep)

    result = await purge(platform, older_than=90 * DAY, batch_size=2)

    assert result["event"] == 5
    assert await ids(platform, models.Event) == {keep.id}
    event_deletes = [s for s in delete_statements if s.lstrip().upper().startswith("DELETE FROM EVENT")]
    # 2 + 2 + 1: the short batch ends the loop.
    assert len(event_deletes) == 3


async def test_service_purges_on_start_and_stops_on_request(platform: Platform) -> None:
    old = models.Event(trigger_ref="core.timer", created=utcnow() - 100 * DAY)
    await add(platform, old)
    platform.settings.retention.interval = 0.05
    stop = asyncio.Event()

    task = asyncio.create_task(RetentionService().run(platform, stop))
    for _ in range(200):
        if not await ids(platform, models.Event):
            break
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(task, timeout=5)

    assert await ids(platform, models.Event) == set()


async def test_service_does_nothing_when_disabled(platform: Platform) -> None:
    old = models.Event(trigger_ref="core.timer", created=utcnow() - 1000 * DAY)
    await add(platform, old)
    platform.settings.retention.max_age_days = 0
    stop = asyncio.Event()

    task = asyncio.create_task(RetentionService().run(platform, stop))
    await asyncio.sleep(0.2)
    stop.set()
    await asyncio.wait_for(task, timeout=5)

    assert await ids(platform, models.Event) == {old.id}


def test_cli_purges_with_an_explicit_age(settings: Settings, tmp_path: Path) -> None:
    async def seed() -> None:
        async with open_platform(settings) as rt:
            if BACKEND == "postgres":
                await _truncate_all(rt)
            await add(
                rt,
                models.Event(trigger_ref="core.timer", created=utcnow() - 40 * DAY),
                models.Event(trigger_ref="core.timer", created=utcnow() - 20 * DAY),
            )

    asyncio.run(seed())
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump({"data_dir": str(settings.data_dir), "database": {"url": settings.database.url}})
    )

    default = CliRunner().invoke(cli, ["retention", "run", "-c", str(config)])
    explicit = CliRunner().invoke(cli, ["retention", "run", "-c", str(config), "--older-than-days", "30"])

    assert default.exit_code == 0, default.output
    assert "event: 0" in default.output
    assert explicit.exit_code == 0, explicit.output
    assert "event: 1" in explicit.output
