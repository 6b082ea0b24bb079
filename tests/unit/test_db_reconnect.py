"""Telling "the database is unreachable" apart from real errors, and retrying through it
(docs/operations.md "Reconnection")."""

from __future__ import annotations

import asyncpg
import pytest

from attune.bus.base import is_transient
from attune.db import database
from attune.db.database import is_disconnect, retrying


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(111, "Connection refused"),
        OSError("Multiple exceptions: [Errno 111] Connect call failed ('127.0.0.1', 5432)"),
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already"),
    ],
)
def test_a_lost_or_refused_connection_is_a_disconnect(error: BaseException) -> None:
    assert is_disconnect(error)
    wrapped = RuntimeError("while handling a message")
    wrapped.__cause__ = error
    assert is_disconnect(wrapped)
    # A message handler hitting it requeues the message instead of dead-lettering it.
    assert is_transient(wrapped)


@pytest.mark.parametrize(
    "error",
    [ValueError("bad parameter"), FileNotFoundError(2, "No such file"), KeyError("x")],
)
def test_other_errors_are_not_disconnects(error: BaseException) -> None:
    assert not is_disconnect(error)


async def test_retrying_waits_out_an_outage(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(database, "RETRY_FIRST", 0.01)
    calls = 0

    async def work() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ConnectionRefusedError(111, "Connection refused")
        return "written"

    assert await retrying(work, what="test") == "written"
    assert calls == 3


async def test_retrying_lets_real_errors_through_at_once() -> None:
    calls = 0

    async def work() -> None:
        nonlocal calls
        calls += 1
        raise ValueError("constraint violated")

    with pytest.raises(ValueError):
        await retrying(work, what="test")
    assert calls == 1
