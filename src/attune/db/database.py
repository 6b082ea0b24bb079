"""The database port: ``session()`` for reads, ``transaction()`` for writes.

Dialect specifics live here and nowhere else:

* SQLite: WAL so readers never block the writer, foreign keys on (cascades rely on them), a busy
  timeout instead of "database is locked" errors, and ``BEGIN IMMEDIATE`` for write transactions so
  two writers queue up at the start instead of failing at their first write.
* PostgreSQL: a bounded pool sized from ``database.max_connections``, with ``pool_pre_ping`` so a
  connection broken by a server restart is replaced on checkout.

Reconnection (docs/operations.md "Guarantees"): :func:`is_disconnect` tells a lost or refused
connection apart from a real error; message handlers then requeue instead of dead-lettering,
and :func:`retrying` repeats a unit of work with backoff until the database is back.
:meth:`Database.wait_ready` lets a process start before its database. Losing and regaining the
connection are logged once each (``lost the connection to the database``, ``reconnected to the
database``).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session

from attune.db.group_commit import WINDOW as GROUP_WINDOW
from attune.db.group_commit import GroupCommitter
from attune.db.savepoints import install_plain_savepoints
from attune.db.sqlite_inline import inline_creator
from attune.settings import async_url

_IMMEDIATE = "attune_immediate"
log = logging.getLogger(__name__)
T = TypeVar("T")

#: Backoff between reconnection attempts: first wait, growth factor, cap (seconds).
RETRY_FIRST = 0.5
RETRY_FACTOR = 2.0
RETRY_MAX = 5.0
# asyncpg errors meaning "no usable connection": SQLSTATE classes 08 (connection exception) and
# 57P (operator intervention: shutdown, cannot connect now), and a connection already closed.
_DISCONNECT_NAMES = frozenset(
    {
        "PostgresConnectionError",
        "ConnectionDoesNotExistError",
        "ConnectionFailureError",
        "ConnectionRejectionError",
        "OperatorInterventionError",
        "CannotConnectNowError",
        "AdminShutdownError",
        "CrashShutdownError",
        "TooManyConnectionsError",
    }
)


_NETWORK_ERRNOS = frozenset(
    {errno.ECONNREFUSED, errno.ECONNRESET, errno.ECONNABORTED, errno.EHOSTUNREACH}
    | {errno.ENETUNREACH, errno.ETIMEDOUT, errno.EPIPE}
)


def is_disconnect(error: BaseException) -> bool:
    """Whether ``error`` (or what caused it) means the database is unreachable right now:
    a refused or broken connection, a server shutting down or starting up, a pool timeout."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [error]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, sa.exc.DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, ConnectionError | TimeoutError | sa.exc.TimeoutError):
            return True
        if isinstance(current, OSError) and (
            current.errno in _NETWORK_ERRNOS or "Connect call failed" in str(current)
        ):
            return True
        if any(cls.__name__ in _DISCONNECT_NAMES for cls in type(current).__mro__):
            return True
        orig = getattr(current, "orig", None)
        stack.extend(
            [orig if isinstance(orig, BaseException) else None, current.__cause__, current.__context__]
        )
    return False


async def retrying(work: Callable[[], Awaitable[T]], *, what: str, patience: float | None = None) -> T:
    """Run ``work``; while it fails because the database is unreachable, wait and run it again
    (backoff from 0.5 s to 5 s; for at most ``patience`` seconds when given). Other errors, and
    the last one once patience runs out, propagate. ``work`` must be one whole transaction."""
    delay = RETRY_FIRST
    deadline = None if patience is None else time.monotonic() + patience
    while True:
        try:
            return await work()
        except Exception as exc:
            if not is_disconnect(exc) or (deadline is not None and time.monotonic() + delay > deadline):
                raise
            log.warning("%s: the database is unreachable (%s); retrying in %.1f s", what, exc, delay)
        await asyncio.sleep(delay)
        delay = min(delay * RETRY_FACTOR, RETRY_MAX)


class Database:
    """Owns the engine and hands out sessions. ``after_commit`` hooks run once a write commits."""

    def __init__(
        self,
        url: str,
        *,
        max_connections: int = 10,
        echo: bool = False,
        group_commit_window: float = GROUP_WINDOW,
    ) -> None:
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
        install_plain_savepoints(self.engine.dialect)
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
        self._committer: GroupCommitter | None = None
        if self.dialect == "sqlite" and group_commit_window > 0:
            self._committer = GroupCommitter(
                self.engine.execution_options(**{_IMMEDIATE: True}),
                self._session_class,
                self._after_commit,
                window=group_commit_window,
            )
        self._lost_at: float | None = None
        _install_connection_log(self)

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

    def transaction(self) -> contextlib.AbstractAsyncContextManager[AsyncSession]:
        """A write unit of work: commits on success, rolls back on error, then runs hooks.

        On SQLite, writers of this process take turns: SQLite admits one writer at a time anyway,
        and waiting on an asyncio lock is instant where SQLite's own busy handler would sleep in
        steps of up to 100 ms. Queued writers share one transaction, each in its own savepoint
        (group commit, :mod:`attune.db.group_commit`); each returns once its group committed.
        Never open a write transaction inside another one, nor wait inside one for something
        another writer does only after its own ``transaction()`` returned: its commit waits for
        the units queued behind it.
        """
        if self._committer is not None:
            return self._committer.transaction()
        return self._single_transaction()

    @contextlib.asynccontextmanager
    async def _single_transaction(self) -> AsyncIterator[AsyncSession]:
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

    def _connection_lost(self, error: BaseException) -> None:
        if self._lost_at is None:
            self._lost_at = time.monotonic()
            log.warning("lost the connection to the database (%s); reconnecting on the next use", error)

    def _connected(self) -> None:
        if self._lost_at is not None:
            down, self._lost_at = time.monotonic() - self._lost_at, None
            log.warning("reconnected to the database after %.1f s", down)

    async def wait_ready(self, patience: float = 120.0) -> None:
        """Wait (with backoff, up to ``patience`` seconds) until the database answers."""

        async def probe() -> None:
            async with self.engine.connect() as conn:
                await conn.execute(sa.text("SELECT 1"))

        await retrying(probe, what="connecting to the database", patience=patience)

    async def ping(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(sa.text("SELECT 1"))
        except Exception:
            return False
        return True

    async def dispose(self) -> None:
        if self._committer is not None:
            await self._committer.close()
        await self.engine.dispose()


def _install_connection_log(db: Database) -> None:
    """Log a lost connection once, and its return once (the pool reconnects by itself)."""
    sync_engine = db.engine.sync_engine

    @event.listens_for(sync_engine, "handle_error")
    def _on_error(context: Any) -> None:
        # Only the driver's own errors: an unrelated failure (the broker dropping) may surface
        # inside a database call too.
        error = context.original_exception
        from_driver = type(error).__module__.split(".")[0] in ("asyncpg", "sqlite3", "aiosqlite")
        if context.is_disconnect or (from_driver and is_disconnect(error)):
            db._connection_lost(error)

    @event.listens_for(sync_engine, "connect")
    def _on_connect(_dbapi_conn: Any, _record: Any) -> None:
        db._connected()


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
