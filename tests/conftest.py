"""Shared fixtures. The backend pair comes from ``ATTUNE_TEST_BACKEND``:

* ``sqlite`` (default): a SQLite file per test and the in-memory bus;
* ``postgres``: one PostgreSQL database per session (tables truncated between tests) and RabbitMQ.

Tests needing an absent service skip locally and fail under ``CI=true``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from attune.api.app import create_app
from attune.auth.passwords import hash_password, make_hasher
from attune.db import models
from attune.db.repos import identities
from attune.db.types import utcnow
from attune.platform import Platform, open_platform
from attune.settings import Settings, load_settings
from attune.testing.clock import FakeClock

REPO = Path(__file__).resolve().parents[1]
BACKEND = os.environ.get("ATTUNE_TEST_BACKEND", "sqlite")
IN_CI = os.environ.get("CI", "").lower() == "true"
PG_URL = os.environ.get("ATTUNE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432")
AMQP_URL = os.environ.get("ATTUNE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
TEST_PASSWORD = "Secret-Passw0rd"
TEST_JWT_SECRET = "test-jwt-secret-0123456789abcdef0123456789"


def service_up(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require(condition: bool, message: str) -> None:
    """Skip the test when ``condition`` is false, except under CI where that is a failure
    (nothing may skip silently in CI)."""
    if condition:
        return
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def require_service(name: str, host: str, port: int) -> None:
    """Skip when ``name`` is unreachable, except under CI where that is a failure."""
    require(service_up(host, port), f"{name} is not reachable at {host}:{port}")


def require_postgres() -> None:
    require_service("PostgreSQL", "127.0.0.1", 5432)


def require_rabbitmq() -> None:
    require_service("RabbitMQ", "127.0.0.1", 5672)


async def _create_pg_database(name: str) -> str:
    admin = create_async_engine(
        f"postgresql+asyncpg://{PG_URL.split('://', 1)[1]}/postgres", isolation_level="AUTOCOMMIT"
    )
    async with admin.connect() as conn:
        await conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()
    url = f"postgresql+asyncpg://{PG_URL.split('://', 1)[1]}/{name}"
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(models.Base.metadata.create_all)
    await engine.dispose()
    return url


async def _drop_pg_database(name: str) -> None:
    admin = create_async_engine(
        f"postgresql+asyncpg://{PG_URL.split('://', 1)[1]}/postgres", isolation_level="AUTOCOMMIT"
    )
    async with admin.connect() as conn:
        await conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await admin.dispose()


async def _create_sqlite_template(path: Path) -> None:
    engine = create_async_engine(f"sqlite+aiosqlite:///{path}")
    async with engine.begin() as conn:
        await conn.run_sync(models.Base.metadata.create_all)
    await engine.dispose()


@pytest.fixture(scope="session")
def database_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """SQLite: a schema file copied per test. PostgreSQL: the session database URL."""
    if BACKEND == "postgres":
        require_postgres()
        require_rabbitmq()
        name = f"attune_test_{uuid.uuid4().hex[:10]}"
        url = asyncio.run(_create_pg_database(name))
        yield url
        asyncio.run(_drop_pg_database(name))
    else:
        path = tmp_path_factory.mktemp("schema") / "template.db"
        asyncio.run(_create_sqlite_template(path))
        yield str(path)


@pytest.fixture(scope="session")
def bus_prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}."


@pytest.fixture
def packs_dir(tmp_path: Path) -> Path:
    """A writable packs_base_dir holding a copy of the core pack."""
    target = tmp_path / "packs"
    target.mkdir()
    shutil.copytree(REPO / "packs" / "core", target / "core", symlinks=True)
    return target


@pytest.fixture
def settings(tmp_path: Path, database_template: str, packs_dir: Path, bus_prefix: str) -> Settings:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    if BACKEND == "postgres":
        db_url, mq_url = database_template, AMQP_URL
    else:
        db_file = data_dir / "attune.db"
        shutil.copy(database_template, db_file)
        db_url, mq_url = f"sqlite:///{db_file}", "memory://"
    overrides: dict[str, Any] = {
        "data_dir": str(data_dir),
        "packs_base_dir": str(packs_dir),
        "database": {"url": db_url, "max_connections": 5},
        "message_queue": {"url": mq_url, "prefix": bus_prefix},
        "security": {"jwt_secret": TEST_JWT_SECRET, "encryption_key": "k" * 40},
    }
    return load_settings(None, overrides, ensure_secrets=False, read_files=False)


async def _truncate_all(platform: Platform) -> None:
    names = ", ".join(f'"{t.name}"' for t in models.Base.metadata.sorted_tables)
    async with platform.db.transaction() as session:
        await session.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture
async def platform(settings: Settings) -> AsyncIterator[Platform]:
    async with open_platform(settings) as rt:
        if BACKEND == "postgres":
            await _truncate_all(rt)
        yield rt


@pytest.fixture
def fake_clock(platform: Platform) -> FakeClock:
    """A fake clock on ``platform`` starting at the real now (so rows stamped by column defaults
    compare sensibly): the services' time moves only with ``fake_clock.advance``. The outbox
    relay, started with the platform, stays on the system clock (docs/development.md)."""
    clock = FakeClock(utcnow())
    platform.clock = clock
    return clock


@pytest.fixture
def app(platform: Platform) -> Any:
    return create_app(platform)


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An unauthenticated client talking to the app in-process."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://attune.test") as c:
        yield c


@pytest.fixture(scope="session")
def password_hash() -> str:
    return hash_password(make_hasher(), TEST_PASSWORD)


@pytest.fixture
async def user(platform: Platform, password_hash: str) -> models.Identity:
    async with platform.db.transaction() as session:
        return await identities.create(
            session, "alice", password_hash=password_hash, display_name="Alice", is_admin=True
        )


@pytest.fixture
async def api(app: Any, platform: Platform, user: models.Identity) -> AsyncIterator[httpx.AsyncClient]:
    """A client carrying a valid access token for ``user``."""
    token = platform.tokens.access(user.id, user.login)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://attune.test", headers={"Authorization": f"Bearer {token}"}
    ) as c:
        yield c


async def _create_empty_pg_database(name: str) -> None:
    admin = create_async_engine(
        f"postgresql+asyncpg://{PG_URL.split('://', 1)[1]}/postgres", isolation_level="AUTOCOMMIT"
    )
    async with admin.connect() as conn:
        await conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()


@pytest.fixture
def empty_database_url(tmp_path: Path) -> Iterator[str]:
    """A database with no schema at all (for migrations and real server processes)."""
    if BACKEND == "postgres":
        require_postgres()
        name = f"attune_empty_{uuid.uuid4().hex[:10]}"
        asyncio.run(_create_empty_pg_database(name))
        yield f"postgresql://{PG_URL.split('://', 1)[1]}/{name}"
        asyncio.run(_drop_pg_database(name))
    else:
        yield f"sqlite:///{tmp_path / 'data' / 'attune.db'}"


def backend_bus_url() -> str:
    return AMQP_URL if BACKEND == "postgres" else "memory://"


@pytest.fixture
def held_outbox(platform: Platform) -> None:
    """Keep staged messages in the outbox table so a test can read them (the relay is paused)."""

    platform.relay.pause()
