"""PostgreSQL pool: a connection the server closed is replaced on checkout (src/attune/db/database.py)."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from attune.db.database import Database
from tests.conftest import BACKEND, PG_URL, require_postgres

pytestmark = pytest.mark.skipif(BACKEND != "postgres", reason="PostgreSQL pool behaviour")

BACKEND_PID = sa.text("SELECT pg_backend_pid()")


async def test_a_connection_the_server_terminated_is_replaced_without_an_error() -> None:
    require_postgres()
    db = Database(f"postgresql://{PG_URL.split('://', 1)[1]}/postgres", max_connections=2)
    admin = Database(f"postgresql://{PG_URL.split('://', 1)[1]}/postgres", max_connections=2)
    try:
        async with db.session() as session:
            pid = (await session.execute(BACKEND_PID)).scalar_one()
        # What a server restart does to every backend, here to the one pooled connection.
        async with admin.transaction() as session:
            await session.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        for _ in range(100):
            async with admin.session() as session:
                gone = not (
                    await session.execute(
                        sa.text("SELECT 1 FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
                    )
                ).first()
            if gone:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.1)  # the client reads the socket's end on its event loop
        async with db.session() as session:
            assert (await session.execute(BACKEND_PID)).scalar_one() != pid
    finally:
        await db.dispose()
        await admin.dispose()
