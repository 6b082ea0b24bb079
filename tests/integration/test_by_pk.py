"""Rows by primary key through statements built once (docs/performance.md, "Rows by id").

``by_pk.get`` replaces ``session.get`` on a run's path; it must answer as ``session.get`` does:
the row or None, the session's own object when it holds one (without a query unless locked),
fresh values for an expired object, ``FOR UPDATE`` where the database takes row locks.
"""

from __future__ import annotations

import sqlalchemy as sa

from attune.db import models
from attune.db.repos import actions, by_pk, locking, packs
from attune.platform import Platform
from tests.conftest import BACKEND
from tests.integration.test_executor import seed_pack
from tests.integration.test_transitions import counting


async def test_rows_by_id_are_the_rows_session_get_reads(platform: Platform) -> None:
    first, action, _ = await seed_pack(platform, pack_ref="one", config={"n": 1})
    second, _, _ = await seed_pack(platform, pack_ref="two", config={"n": 2})
    async with platform.db.session() as session:
        # One statement serves every id: each call reads its own row.
        got = [await by_pk.get(session, models.Pack, pack.id) for pack in (first, second)]
        assert [(p.ref, p.config) for p in got if p is not None] == [("one", {"n": 1}), ("two", {"n": 2})]
        assert await by_pk.get(session, models.Pack, second.id + 1000) is None
        read = await by_pk.get(session, models.Action, action.id)
        assert read is not None and read.ref == action.ref
        assert read is await session.get(models.Action, action.id)
        assert [await packs.config_of(session, p.id) for p in (first, second)] == [{"n": 1}, {"n": 2}]
        assert await packs.config_of(session, second.id + 1000) is None
        assert action.runtime is not None
        assert await actions.runtime_name_and_config(session, action.runtime) == (
            "Shell",
            {"interpreter": {"binary": "/bin/bash", "args": [], "file_extension": ".sh"}},
        )
        assert await actions.runtime_name_and_config(session, action.runtime + 1000) is None


async def test_a_row_the_session_holds_is_returned_without_a_query_and_refreshed_once_expired(
    platform: Platform,
) -> None:
    pack, _, _ = await seed_pack(platform, config={"v": "old"})
    async with platform.db.session() as session:
        held = await by_pk.get(session, models.Pack, pack.id)
        with counting(platform) as statements:
            again = await by_pk.get(session, models.Pack, pack.id)
        assert again is held and statements == []

        async with platform.db.transaction() as other:
            await other.execute(
                sa.update(models.Pack).where(models.Pack.id == pack.id).values(config={"v": "new"})
            )
        # Ending the read transaction expires what the session holds (and its snapshot on SQLite).
        await session.rollback()
        with counting(platform) as statements:
            fresh = await by_pk.get(session, models.Pack, pack.id)
        assert fresh is held and len(statements) == 1
        assert fresh is not None and fresh.config == {"v": "new"}


async def test_a_locked_read_always_queries_and_locks_where_the_database_can(platform: Platform) -> None:
    pack, _, _ = await seed_pack(platform)
    async with platform.db.transaction() as session:
        held = await by_pk.get(session, models.Pack, pack.id)
        with counting(platform) as statements:
            locked = await locking.get_locked(session, models.Pack, pack.id)
        assert locked is held
        if BACKEND == "postgres":
            assert len(statements) == 1 and "FOR UPDATE" in statements[0]
        else:
            # SQLite serialises writers (BEGIN IMMEDIATE): no lock to take, the held row serves.
            assert statements == []
