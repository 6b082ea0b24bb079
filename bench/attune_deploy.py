"""Start a fresh Attune deployment for a benchmark and tear it down afterwards.

``embedded``: one ``attune server`` on 127.0.0.1, a free port, its own data directory (SQLite and
the in-memory bus). ``scaled``: ``attune api``, N executors, N workers and a sensor service on the
local PostgreSQL (a fresh database, dropped afterwards) and RabbitMQ (a queue prefix of its own).
Settings are the server's defaults; only the address, the data and the logs are the bench's.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa
from measure import proc_tree
from sqlalchemy.ext.asyncio import create_async_engine

from attune.testing.deployment import Deployment, make_workdir

PG_ADMIN = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
AMQP = "amqp://guest:guest@127.0.0.1:5672/%2f"
# Deployment shortens these for tests; the bench measures the defaults (src/attune/settings.py).
DEFAULTS = {
    "ATTUNE__WORKER__HEARTBEAT_INTERVAL": "30",
    "ATTUNE__SENSOR__HEARTBEAT_INTERVAL": "30",
    "ATTUNE__EXECUTOR__NO_WORKER_TIMEOUT": "60",
    "ATTUNE__LOG__LEVEL": "info",
}


async def _pg(statement: str) -> None:
    engine = create_async_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(sa.text(statement))
    finally:
        await engine.dispose()


class BenchDeployment:
    """A running deployment: ``base`` URL, ``pids`` of its processes, ``stop()``."""

    def __init__(self, mode: str = "embedded", executors: int = 1, workers: int = 1) -> None:
        if mode not in ("embedded", "scaled"):
            raise ValueError(f"unknown mode {mode!r}")
        self.mode, self.executors, self.workers = mode, executors, workers
        self.root = Path(tempfile.mkdtemp(prefix=f"attune-bench-{mode}-"))
        workdir = make_workdir(self.root)
        self.database = ""
        if mode == "scaled":
            self.database = f"attune_bench_{uuid.uuid4().hex[:10]}"
            db_url, bus_url = f"postgresql://postgres@127.0.0.1:5432/{self.database}", AMQP
        else:
            db_url, bus_url = f"sqlite:///{workdir / 'data' / 'attune.db'}", "memory://"
        self.deployment = Deployment(workdir=workdir, database_url=db_url, bus_url=bus_url, mode=mode)
        self.deployment.extra_env.update(DEFAULTS)
        self.deployment.extra_env["ATTUNE__DATA_DIR"] = str(workdir / "data")

    @property
    def base(self) -> str:
        return self.deployment.base

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.deployment.processes.values()]

    def describe(self) -> str:
        if self.mode == "embedded":
            return "embedded (attune server, SQLite, in-process bus)"
        return (
            f"scaled (api, {self.executors} executor(s), {self.workers} worker(s), sensor; "
            "PostgreSQL, RabbitMQ)"
        )

    def start(self) -> BenchDeployment:
        if self.database:
            asyncio.run(_pg(f'CREATE DATABASE "{self.database}"'))
        try:
            self.deployment.start()
            port = self.deployment.port
            for i in range(1, self.executors):
                self.deployment.spawn(f"executor{i + 1}", "executor")
            for i in range(1, self.workers):
                self.deployment.spawn(f"worker{i + 1}", "worker", "--name", f"worker-{i + 1}-{port}")
            self._wait_workers()
        except BaseException:
            self.stop()
            raise
        return self

    def wait_quiet(self, timeout: float = 600, quiet_s: float = 2.0) -> None:
        """Wait until the deployment's processes have had no children for ``quiet_s``: registering
        a pack with a Python action builds its virtualenv in the background."""
        deadline = time.monotonic() + timeout
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            if _busy_children(self.pids):
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= quiet_s:
                return
            time.sleep(0.2)
        raise RuntimeError(f"the deployment's child processes did not finish within {timeout:.0f} s")

    def _wait_workers(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = self.deployment.get("/api/v1/workers")
            if sum(1 for w in rows if w["live"] and w["worker_role"] == "action") >= self.workers:
                return
            time.sleep(0.2)
        raise RuntimeError(f"{self.workers} action workers did not come up\n{self.deployment.log_text()}")

    def stop(self) -> None:
        try:
            self.deployment.stop()
        finally:
            if self.database:
                asyncio.run(_pg(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)'))
            shutil.rmtree(self.root, ignore_errors=True)


def _busy_children(roots: list[int]) -> bool:
    """Whether the deployment has child processes other than its workers' resident watchdogs."""
    for pid in set(proc_tree(roots)) - set(roots):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if b"watchdog.py" not in cmdline:
            return True
    return False
