"""The Alembic migrations build exactly the schema the models declare, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from attune.db import models
from attune.db.database import Database
from attune.db.migrate import current, upgrade

PG_ADMIN_URL = os.environ.get("ATTUNE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _schema_diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, models.Base.metadata))


def _check_constraints(connection: Connection) -> dict[str, set[str]]:
    """Named CHECK constraints per table; Alembic's comparison does not look at these."""
    inspector = sa.inspect(connection)
    return {
        table: {str(ck["name"]) for ck in inspector.get_check_constraints(table)}
        for table in models.Base.metadata.tables
    }


def _declared_checks() -> dict[str, set[str]]:
    return {
        name: {str(c.name) for c in table.constraints if isinstance(c, sa.CheckConstraint)}
        for name, table in models.Base.metadata.tables.items()
    }


async def _assert_matches_models(url: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(_schema_diff)
            checks = await conn.run_sync(_check_constraints)
    finally:
        await engine.dispose()
    assert diff == []
    assert checks == _declared_checks()


async def test_sqlite_upgrade_matches_models_and_is_idempotent(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nested' / 'attune.db'}"
    assert await current(url) is None

    await upgrade(url)
    await upgrade(url)  # a second run must be a no-op, not an error

    assert await current(url) == "0004_delivery"
    await _assert_matches_models("sqlite+aiosqlite:///" + str(tmp_path / "nested" / "attune.db"))


async def test_postgres_upgrade_matches_models() -> None:
    asyncpg = pytest.importorskip("asyncpg")
    admin_dsn = PG_ADMIN_URL
    try:
        admin = await asyncpg.connect(admin_dsn, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"PostgreSQL unreachable: {exc}")
    name = f"attune_test_mig_{secrets.token_hex(4)}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
        await upgrade(url)
        await upgrade(url)
        assert await current(url) == "0004_delivery"
        await _assert_matches_models(url.replace("postgresql://", "postgresql+asyncpg://", 1))
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _seed(db: Database) -> tuple[int, int, int]:
    async with db.transaction() as s:
        pack = models.Pack(ref="demo", label="Demo", version="1.0.0")
        s.add(pack)
        await s.flush()
        trigger = models.Trigger(ref="demo.tick", pack=pack.id, pack_ref="demo", label="Tick")
        action = models.Action(
            ref="demo.echo", pack=pack.id, pack_ref="demo", label="Echo", description="", entrypoint="echo.sh"
        )
        s.add_all([trigger, action])
        await s.flush()
        other = models.Pack(ref="other", label="Other", version="1.0.0")
        s.add(other)
        await s.flush()
        # A rule in another pack, so deleting the action's pack does not cascade it away.
        rule = models.Rule(
            ref="other.on_tick",
            pack=other.id,
            pack_ref="other",
            label="On tick",
            description="",
            action=action.id,
            action_ref="demo.echo",
            trigger=trigger.id,
            trigger_ref="demo.tick",
            enabled=True,
        )
        s.add(rule)
        await s.flush()
        return pack.id, action.id, rule.id


async def test_sqlite_cascades_follow_the_delete_policy(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'attune.db'}"
    await upgrade(url)
    db = Database(url)
    try:
        pack_id, action_id, rule_id = await _seed(db)

        async with db.transaction() as s:
            await s.execute(sa.delete(models.Action).where(models.Action.id == action_id))
        async with db.session() as s:
            rule = (await s.execute(sa.select(models.Rule).where(models.Rule.id == rule_id))).scalar_one()
            assert rule.action is None
            assert rule.action_ref == "demo.echo"
            assert rule.trigger is not None

        async with db.transaction() as s:
            s.add(
                models.Action(
                    ref="demo.again", pack=pack_id, pack_ref="demo", label="A", description="", entrypoint="a"
                )
            )
        async with db.transaction() as s:
            await s.execute(sa.delete(models.Pack).where(models.Pack.id == pack_id))
        async with db.session() as s:
            remaining = (await s.execute(sa.select(models.Action.ref))).scalars().all()
            rule = (await s.execute(sa.select(models.Rule).where(models.Rule.id == rule_id))).scalar_one()
        assert remaining == []
        # The pack's trigger went with the pack; the rule in the other pack survives, unlinked.
        assert rule.trigger is None
        assert rule.trigger_ref == "demo.tick"
    finally:
        await db.dispose()


async def test_check_constraints_reject_out_of_vocabulary_values(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'attune.db'}")
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(models.Base.metadata.create_all)
        async with db.transaction() as s:
            pack = models.Pack(ref="demo", label="Demo", version="1.0.0")
            s.add(pack)
            await s.flush()
            pack_id = pack.id
        with pytest.raises(sa.exc.IntegrityError):
            async with db.transaction() as s:
                s.add(
                    models.Action(
                        ref="demo.bad",
                        pack=pack_id,
                        pack_ref="demo",
                        label="Bad",
                        description="",
                        entrypoint="x",
                        output_format="xml",
                    )
                )
        with pytest.raises(sa.exc.IntegrityError):
            async with db.transaction() as s:
                s.add(models.Execution(action_ref="demo.x", status="exploded"))
        async with db.transaction() as s:
            s.add(models.Execution(action_ref="demo.x"))
        async with db.session() as s:
            execution = (await s.execute(sa.select(models.Execution))).scalar_one()
        assert execution.status == "requested"
        assert execution.created.tzinfo is not None
    finally:
        await db.dispose()
