"""Group commit on the embedded SQLite database (docs/performance.md "Group commit"): queued
writers share one transaction, each unit still succeeds or fails on its own, and nobody hears
"committed" before the COMMIT returned."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from attune.db.database import Database

ROWS = sa.table("rows", sa.column("name", sa.String))


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    # A wide window so the test does not depend on how fast this machine runs a unit.
    database = Database(f"sqlite:///{tmp_path / 'group.db'}", group_commit_window=5.0)
    async with database.engine.begin() as conn:
        await conn.exec_driver_sql("CREATE TABLE rows (name TEXT PRIMARY KEY)")
    yield database
    await database.dispose()


def commits_of(db: Database) -> list[int]:
    """Count the COMMITs the engine issues."""
    counted: list[int] = []
    event.listen(db.engine.sync_engine, "commit", lambda _conn: counted.append(1))
    return counted


def committed_names(db: Database) -> set[str]:
    """What another connection sees: only committed rows."""
    path = db.engine.url.database
    assert path is not None
    with sqlite3.connect(path) as other:
        return {name for (name,) in other.execute("SELECT name FROM rows")}


async def write(db: Database, name: str, *, fail: bool = False) -> None:
    async with db.transaction() as session:
        await session.execute(sa.insert(ROWS).values(name=name))
        await asyncio.sleep(0)  # let the other writers queue up behind this one
        if fail:
            raise ValueError(f"{name} failed")


async def test_queued_writers_share_one_commit(db: Database) -> None:
    commits = commits_of(db)
    await asyncio.gather(*(write(db, f"run-{i}") for i in range(20)))
    assert committed_names(db) == {f"run-{i}" for i in range(20)}
    # Twenty queued writers share one commit (the first group holds them all).
    assert len(commits) == 1


async def test_a_failing_unit_rolls_back_alone(db: Database) -> None:
    results = await asyncio.gather(
        write(db, "first"), write(db, "broken", fail=True), write(db, "third"), return_exceptions=True
    )
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], ValueError)
    assert committed_names(db) == {"first", "third"}


async def test_a_constraint_error_rolls_back_its_own_unit_only(db: Database) -> None:
    await write(db, "taken")
    results = await asyncio.gather(write(db, "a"), write(db, "taken"), write(db, "b"), return_exceptions=True)
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], sa.exc.IntegrityError)
    assert committed_names(db) == {"taken", "a", "b"}


async def test_a_writer_returns_only_once_its_unit_is_committed(db: Database) -> None:
    seen: dict[str, set[str]] = {}

    async def write_then_look(name: str) -> None:
        await write(db, name)
        seen[name] = committed_names(db)

    await asyncio.gather(*(write_then_look(f"run-{i}") for i in range(10)))
    assert len(seen) == 10
    assert all(name in visible for name, visible in seen.items())


async def test_hooks_run_after_the_commit_in_commit_order(db: Database) -> None:
    heard: list[tuple[str, set[str]]] = []
    db.add_after_commit(lambda info: heard.append((info["name"], committed_names(db))))

    async def tagged(name: str) -> None:
        async with db.transaction() as session:
            session.info["name"] = name
            await session.execute(sa.insert(ROWS).values(name=name))
            await asyncio.sleep(0)

    await asyncio.gather(*(tagged(f"run-{i}") for i in range(8)))
    assert [name for name, _ in heard] == [f"run-{i}" for i in range(8)]
    assert all(name in visible for name, visible in heard)


async def test_a_failed_commit_fails_every_unit_of_its_group_and_runs_no_hook(db: Database) -> None:
    heard: list[dict[Any, Any]] = []
    db.add_after_commit(heard.append)
    refused: list[int] = []

    def refuse_once(_conn: Any) -> None:
        if not refused:
            refused.append(1)
            raise OSError("disk I/O error")

    event.listen(db.engine.sync_engine, "commit", refuse_once)
    results = await asyncio.gather(*(write(db, f"run-{i}") for i in range(4)), return_exceptions=True)
    failed = [r for r in results if isinstance(r, Exception)]
    assert failed and all("disk I/O error" in str(r) for r in failed)
    # The failed group's units are gone; units of a later group (if any) committed and were heard.
    names = committed_names(db)
    assert len(names) == len(results) - len(failed) == len(heard)
    await write(db, "after")
    assert "after" in committed_names(db)


async def test_a_cancelled_writer_does_not_stall_the_others(db: Database) -> None:
    started = asyncio.Event()

    async def slow() -> None:
        async with db.transaction() as session:
            await session.execute(sa.insert(ROWS).values(name="slow"))
            started.set()
            await asyncio.sleep(10)

    task = asyncio.create_task(slow())
    await started.wait()
    others = [asyncio.create_task(write(db, f"run-{i}")) for i in range(3)]
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.wait_for(asyncio.gather(*others), timeout=5)
    assert committed_names(db) == {"run-0", "run-1", "run-2"}


async def test_a_window_of_zero_commits_every_unit_on_its_own(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'single.db'}", group_commit_window=0)
    try:
        async with database.engine.begin() as conn:
            await conn.exec_driver_sql("CREATE TABLE rows (name TEXT PRIMARY KEY)")
        commits = commits_of(database)
        await asyncio.gather(*(write(database, f"run-{i}") for i in range(5)))
        assert len(commits) == 5
    finally:
        await database.dispose()


async def test_a_failing_first_unit_ends_its_group_and_the_others_still_commit(db: Database) -> None:
    results = await asyncio.gather(
        write(db, "broken", fail=True), write(db, "second"), write(db, "third"), return_exceptions=True
    )
    assert isinstance(results[0], ValueError)
    assert results[1:] == [None, None]
    assert committed_names(db) == {"second", "third"}


async def test_a_lone_writer_needs_no_savepoint_and_joined_ones_one_each(db: Database) -> None:
    statements: list[str] = []
    event.listen(
        db.engine.sync_engine,
        "before_cursor_execute",
        lambda _c, _cur, statement, *_a: statements.append(statement.split()[0]),
    )
    await write(db, "alone")
    assert "SAVEPOINT" not in statements
    statements.clear()
    await asyncio.gather(*(write(db, f"run-{i}") for i in range(4)))
    assert statements.count("SAVEPOINT") == 3
    assert statements.count("RELEASE") == 3
