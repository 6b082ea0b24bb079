"""Group commit for the embedded SQLite database (docs/performance.md "Group commit").

SQLite admits one writer at a time, so this process's writers already take turns on an asyncio
lock. Each turn used to be a whole transaction: a pooled connection checked out, ``BEGIN
IMMEDIATE``, the statements, ``COMMIT`` (the WAL frames of every page it touched written again),
the connection reset and returned. Under concurrent runs the turns queue up; group commit lets the
writers that are already queued share one transaction:

* the first writer of a group opens the connection and its ``BEGIN IMMEDIATE`` and works in the
  transaction itself (a lone writer costs what it always did: if it fails, the transaction rolls
  back and the group ends); each later writer runs its unit inside its own ``SAVEPOINT``
  (``join_transaction_mode="create_savepoint"``), so a unit that fails rolls back alone;
* when a unit ends it hands the open transaction to the next queued writer, as long as one is
  queued, the group is younger than ``window`` seconds and holds fewer than ``max_units`` units;
  otherwise it commits the group. A flusher queued behind the writers commits it at the latest;
* nobody is told their unit committed before the group's ``COMMIT`` returned: each writer waits
  for it, and the after-commit hooks (outbox relay, local hand-off) run then, in commit order. A
  failed ``COMMIT`` fails every unit of the group.

A unit's latency grows by the units admitted after it (each typically well under a millisecond);
admission closes ``window`` seconds after the group opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

AfterCommit = Callable[[dict[Any, Any]], None]

#: How long a group admits new units after it opened (seconds), and at most how many.
WINDOW = 0.002
MAX_UNITS = 64


class _Group:
    __slots__ = ("connection", "flusher", "opened", "started", "units")

    def __init__(self, connection: AsyncConnection, opened: float) -> None:
        self.connection = connection
        self.opened = opened
        self.started = 0
        self.units: list[tuple[dict[Any, Any], asyncio.Future[None]]] = []
        self.flusher: asyncio.Task[None] | None = None


class GroupCommitter:
    """Write transactions of one process on one SQLite database, committed in groups."""

    def __init__(
        self,
        engine: AsyncEngine,
        session_class: type[Session],
        hooks: list[AfterCommit],
        *,
        window: float = WINDOW,
        max_units: int = MAX_UNITS,
    ) -> None:
        self._engine = engine
        # The first unit owns the transaction (its rollback ends the group, its commit only
        # flushes); later units each get a savepoint.
        self._first = async_sessionmaker(
            expire_on_commit=False, sync_session_class=session_class, join_transaction_mode="rollback_only"
        )
        self._joined = async_sessionmaker(
            expire_on_commit=False, sync_session_class=session_class, join_transaction_mode="create_savepoint"
        )
        self._hooks = hooks
        self._window = window
        self._max_units = max_units
        self._lock = asyncio.Lock()
        self._queued = 0
        self._group: _Group | None = None

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One unit of work; returns once it is committed (or raises if it is not)."""
        self._queued += 1
        try:
            await self._lock.acquire()
        finally:
            self._queued -= 1
        committed: asyncio.Future[None] | None = None
        try:
            group = self._group if self._group is not None else await self._open()
            async with self._unit(group) as session:
                yield session
            info = dict(session.info)
            committed = asyncio.get_running_loop().create_future()
            group.units.append((info, committed))
        finally:
            try:
                await self._hand_on()
            finally:
                self._lock.release()
        await committed

    @contextlib.asynccontextmanager
    async def _unit(self, group: _Group) -> AsyncIterator[AsyncSession]:
        first = group.started == 0
        group.started += 1
        session = (self._first if first else self._joined)(bind=group.connection)
        try:
            transaction = await session.begin()
            try:
                yield session
                await transaction.commit()  # flush (and RELEASE SAVEPOINT for a joined unit)
            except BaseException as error:
                try:
                    # The whole transaction for the first unit, ROLLBACK TO SAVEPOINT for others.
                    await transaction.rollback()
                except BaseException:
                    await self._abort(group, error, broken=True)
                else:
                    if first:
                        await self._abort(group, error, broken=False)
                raise
        finally:
            await session.close()

    async def _open(self) -> _Group:
        connection = await self._engine.connect()
        try:
            await connection.begin()
        except BaseException:
            await connection.close()
            raise
        self._group = _Group(connection, time.monotonic())
        return self._group

    async def _hand_on(self) -> None:
        """With the lock held, after a unit: leave the group to the next writer or commit it."""
        group = self._group
        if group is None:
            return
        young = time.monotonic() - group.opened < self._window
        if self._queued and young and len(group.units) < self._max_units:
            if group.flusher is None:
                group.flusher = asyncio.ensure_future(self._flush(group))
            return
        # Shielded: a writer cancelled here must not leave its group's members waiting forever.
        commit = asyncio.ensure_future(self._commit(group))
        try:
            await asyncio.shield(commit)
        except asyncio.CancelledError:
            await commit
            raise

    async def _flush(self, group: _Group) -> None:
        async with self._lock:
            if self._group is group:
                await self._commit(group)

    async def _commit(self, group: _Group) -> None:
        self._group = None
        try:
            await group.connection.commit()
        except BaseException as error:
            await self._discard(group, error)
            if not isinstance(error, Exception):
                raise
            return
        await group.connection.close()
        for info, committed in group.units:
            try:
                for hook in self._hooks:
                    hook(info)
            except Exception as error:
                _settle(committed, error)
            else:
                _settle(committed, None)

    async def _abort(self, group: _Group, error: BaseException, *, broken: bool) -> None:
        """End the group uncommitted: every unit in it fails (a ``broken`` connection is dropped)."""
        if self._group is group:
            self._group = None
        await self._discard(group, error, broken=broken)

    async def _discard(self, group: _Group, error: BaseException, *, broken: bool = True) -> None:
        with contextlib.suppress(Exception):
            await group.connection.rollback()
        with contextlib.suppress(Exception):
            if broken:
                await group.connection.invalidate()
            await group.connection.close()
        for _info, committed in group.units:
            _settle(committed, error)

    async def close(self, patience: float = 5.0) -> None:
        """Commit what is pending (before the engine is disposed); a writer that keeps the
        turn longer than ``patience`` seconds is left to its own flusher."""
        try:
            async with asyncio.timeout(patience):
                await self._lock.acquire()
        except TimeoutError:
            return
        try:
            if self._group is not None:
                await self._commit(self._group)
        finally:
            self._lock.release()


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
