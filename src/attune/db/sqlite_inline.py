"""An aiosqlite connection that runs statements on the event loop thread.

aiosqlite gives every connection a worker thread and hands each statement to it through a queue;
the result comes back through ``call_soon_threadsafe``. For the embedded deployment that round trip
(thread switch, GIL hand-off, loop wake-up) costs far more than the statement itself: SQLite
statements on a local WAL database take microseconds. Running them inline is safe here because
only this process writes the database, writers take turns on an asyncio lock (``Database``), and
WAL readers never wait for the writer.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Generator
from typing import Any

import aiosqlite


class InlineConnection(aiosqlite.Connection):
    """The aiosqlite API without the thread: every call completes synchronously."""

    def __await__(self) -> Generator[Any, None, aiosqlite.Connection]:
        return self._connect().__await__()

    async def _connect(self) -> aiosqlite.Connection:
        if self._connection is None:
            self._connection = self._connector()
        return self

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self._running or self._connection is None:
            raise ValueError("Connection closed")
        return fn(*args, **kwargs)

    def stop(self) -> None:  # type: ignore[override]
        self._running = False
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def inline_creator(path: str, *, timeout: float = 30) -> Callable[[], Awaitable[aiosqlite.Connection]]:
    """An ``async_creator`` for ``create_async_engine`` opening ``path`` inline."""

    def connector() -> sqlite3.Connection:
        return sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)

    async def create() -> aiosqlite.Connection:
        return await InlineConnection(connector, 64)

    return create
