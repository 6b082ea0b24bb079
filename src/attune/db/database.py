"""The database port: ``session()`` for reads, ``transaction()`` for writes.

Dialect specifics live here and nowhere else:

* SQLite: WAL so readers never block the writer, foreign keys on (cascades rely on them), a busy
  timeout instead of "database is locked" errors, and ``BEGIN IMMEDIATE`` for write transactions so
  two writers queue up at the start instead of failing at their first write.
* PostgreSQL: a bounded pool sized from ``database.max_connections``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session

from attune.db.sqlite_inline import inline_creator
from attune.settings import async_url

_IMMEDIATE = "attune_immediate"


class Database:
    """Owns the engine and hands out sessions. ``after_commit`` hooks run once a write commits."""

    def __init__(self, url: str, *, max_connections: int = 10, echo: bool = False) -> None:
        self.url = async_url(url)
        parsed = make_url(self.url)
        self.dialect = parsed.get_backend_name()
        kwargs: dict[str, Any] = {"echo": echo}
        if self.dialect == "sqlite":
            database = parsed.database or ""
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 30, "isolation_level": None}
            if database and database != ":memory:":
                kwargs["async_creator"] = inline_creator(database)
        else:
            kwargs["pool_size"] = max(2, min(max_connections, 20))
            kwargs["max_overflow"] = max(0, max_connections - kwargs["pool_size"])
            kwargs["pool_pre_ping"] = True
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        if self.dialect == "sqlite":
            _install_sqlite_hooks(self.engine)
        # A Session subclass per instance, so session event listeners (``add_session_listener``)
        # apply to this database's sessions only and never leak to other instances.
        self._session_class: type[Session] = type("AttuneSession", (Session,), {})
        self._read_sessions = async_sessionmaker(
            self.engine, expire_on_commit=False, sync_session_class=self._session_class
        )
        self._write_lock: asyncio.Lock | None = asyncio.Lock() if self.dialect == "sqlite" else None
        self._write_sessions = async_sessionmaker(
            self.engine.execution_options(**{_IMMEDIATE: True}),
            expire_on_commit=False,
            sync_session_class=self._session_class,
        )
        self._after_commit: list[Callable[[dict[Any, Any]], None]] = []

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    def add_after_commit(self, hook: Callable[[dict[Any, Any]], None]) -> None:
        """Register a callback run after every committed write, given the session's ``info``."""
        self._after_commit.append(hook)

    def add_session_listener(self, identifier: str, fn: Callable[..., Any]) -> None:
        """Listen to an ORM ``Session`` event (``after_flush``, ``do_orm_execute``, ...).

        The listener is attached to this instance's sessions only. It runs synchronously inside
        the async session's greenlet, so it may execute statements on ``session.connection()``.
        """
        event.listen(self._session_class, identifier, fn)

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A read-only unit of work; it is rolled back at the end."""
        async with self._read_sessions() as session:
            yield session

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A write unit of work: commits on success, rolls back on error, then runs hooks.

        On SQLite, writers of this process take turns on an asyncio lock: SQLite admits one
        writer at a time anyway, and waiting on the lock is instant where SQLite's own busy
        handler would sleep in steps of up to 100 ms. Never open a write transaction inside
        another one.
        """
        async with self._writer_turn(), self._write_sessions() as session:
            async with session.begin():
                yield session
            info = dict(session.info)
        for hook in self._after_commit:
            hook(info)

    def _writer_turn(self) -> contextlib.AbstractAsyncContextManager[object]:
        if self._write_lock is None:
            return contextlib.nullcontext()
        return self._write_lock

    async def ping(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(sa.text("SELECT 1"))
        except Exception:
            return False
        return True

    async def dispose(self) -> None:
        await self.engine.dispose()


def _install_sqlite_hooks(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # pysqlite's implicit BEGIN is disabled (isolation_level=None); we issue our own.
        if conn.get_execution_options().get(_IMMEDIATE):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")
