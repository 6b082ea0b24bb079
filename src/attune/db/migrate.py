"""Schema migrations: run Alembic programmatically on an async engine (no alembic.ini needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import event, pool
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from attune.settings import async_url

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str) -> Config:
    """An Alembic config pointing at Attune's migration scripts and ``url`` (any driver form)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolates '%', so escape it (URL-encoded passwords contain it).
    config.set_main_option("sqlalchemy.url", async_url(url).replace("%", "%%"))
    config.attributes["url"] = async_url(url)
    return config


def _engine(url: str) -> AsyncEngine:
    url = async_url(url)
    if make_url(url).get_backend_name() != "sqlite":
        return create_async_engine(url, poolclass=pool.NullPool)
    database = make_url(url).database or ""
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    # pysqlite's own transaction handling would autocommit each DDL statement; take control so a
    # failed migration rolls back as a whole. Foreign keys stay OFF (the SQLite default) because
    # batch-mode table rebuilds would otherwise fire ON DELETE CASCADE when dropping the old table.
    engine = create_async_engine(
        url, poolclass=pool.NullPool, connect_args={"isolation_level": None, "timeout": 30}
    )

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


async def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at ``url`` to ``revision``; already being there is a no-op."""
    config = alembic_config(url)

    def _upgrade(connection: Connection) -> None:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    engine = _engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_upgrade)
    finally:
        await engine.dispose()


async def current(url: str) -> str | None:
    """The revision the database at ``url`` is at, or None if it was never migrated."""

    def _current(connection: Connection) -> Any:
        return MigrationContext.configure(connection).get_current_revision()

    engine = _engine(url)
    try:
        async with engine.connect() as connection:
            revision = await connection.run_sync(_current)
    finally:
        await engine.dispose()
    return None if revision is None else str(revision)


async def create_database_if_missing(url: str) -> bool:
    """Create the PostgreSQL database named in ``url`` when it does not exist; True when created
    (SQLite creates its file on first connect, so nothing to do there)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql" or not parsed.database:
        return False
    admin = parsed.set(drivername="postgresql+asyncpg", database="postgres")
    engine = create_async_engine(admin, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            exists = await conn.scalar(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": parsed.database}
            )
            if exists:
                return False
            await conn.execute(sa.text(f'CREATE DATABASE "{parsed.database}"'))
            return True
    finally:
        await engine.dispose()
