"""Fault-test harness: real Attune processes, private brokers, webhook bursts and the tally.

Every fault test prints one line, ``accepted / completed / failed / lost / duplicated / stuck``
(docs/operations.md "Guarantees"), computed from the database after the burst settles:

* ``accepted``: webhooks the API answered 2xx (their event ids are known);
* ``completed`` / ``failed``: the last attempt of the webhook's execution chain (first execution
  plus its automatic retries) ended ``completed`` / in another terminal status;
* ``lost``: an accepted webhook without an enforcement for the rule, or without an execution;
* ``duplicated``: more than one enforcement for (event, rule), more than one first execution for
  an enforcement, or more than one *completed* attempt in a chain;
* ``stuck``: the chain's last attempt is not terminal when the deadline passes.

The restart tests never touch the PostgreSQL and RabbitMQ other people use: :class:`PrivatePostgres`
(``initdb`` into a temporary directory) and :class:`PrivateRabbitMQ` (a second node with its own
name, ports and data directory) are started, restarted and stopped by the test itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from attune.db.database import retrying
from attune.testing.deployment import ATTUNE, Deployment, free_port, make_workdir
from tests.conftest import (
    AMQP_URL,
    BACKEND,
    PG_URL,
    _create_empty_pg_database,
    _drop_pg_database,
    require,
    require_postgres,
    require_rabbitmq,
)

#: Heartbeat of the fault clusters: slow enough that a loaded 2-core machine writes every beat in
#: time (1.5 intervals = the liveness cut-off), fast enough for the tests to wait it out.
HEARTBEAT = 5.0
#: Database pool per process kind (the executors do most of the database work).
POOLS = {"executor": 8, "api": 8, "worker": 5, "sensor": 3}
TERMINAL = frozenset({"completed", "failed", "cancelled", "timeout", "abandoned"})
#: Outcomes the workload's retry policy covers: such a last attempt with budget left awaits its retry.
RETRIED = frozenset({"failed", "timeout", "abandoned"})
PG_BIN = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
RABBITMQ_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
#: Every tally line a fault test printed this session, with the test that printed it: pytest
#: captures a passing test's output, so tests/faults/conftest.py repeats them in the summary.
REPORTED: list[str] = []


def require_scaled_backend() -> None:
    """The scaled fault tests run in the PostgreSQL pass; the SQLite pass skips them by name.

    That skip is explicit and expected (the PostgreSQL pass of the same CI run executes them);
    a missing PostgreSQL or RabbitMQ in the PostgreSQL pass fails under CI (require_*).
    """
    if BACKEND != "postgres":
        pytest.skip(
            "scaled fault test: runs in the PostgreSQL + RabbitMQ pass (ATTUNE_TEST_BACKEND=postgres)"
        )
    require_postgres()
    require_rabbitmq()


def require_binary(path: Path | None, what: str) -> Path:
    """A server binary the private-instance tests need (a failure under CI, a skip locally)."""
    require(path is not None and path.exists(), f"{what} is not installed")
    assert path is not None
    return path


# --------------------------------------------------------------------------- private brokers


def _as_postgres_user() -> list[str]:
    """``initdb``/``pg_ctl`` refuse to run as root: run them as ``postgres`` then."""
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


@dataclass
class PrivatePostgres:
    """A throw-away PostgreSQL cluster in ``root`` on a free port (never the shared one)."""

    root: Path
    port: int = field(default_factory=free_port)

    @property
    def bin(self) -> Path:
        return require_binary(PG_BIN[-1] if PG_BIN else None, "PostgreSQL server")

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, tool: str, *args: str, check: bool = True) -> None:
        subprocess.run([*_as_postgres_user(), str(self.bin / tool), *args], check=check, capture_output=True)

    def init(self) -> PrivatePostgres:
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")
        return self

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        )
        log = str(self.root / "postgres.log")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        """``fast`` (the default of ``systemctl restart``) or ``immediate`` (a crash)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop", check=False)

    def create_database(self, name: str) -> str:
        async def create() -> None:
            admin = create_async_engine(
                f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres", isolation_level="AUTOCOMMIT"
            )
            async with admin.connect() as conn:
                await conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
            await admin.dispose()

        asyncio.run(create())
        return self.url(name)


@dataclass
class PrivateRabbitMQ:
    """A second RabbitMQ node (own name, ports, data and logs; no plugins) in ``root``."""

    root: Path
    port: int = field(default_factory=free_port)
    dist_port: int = field(default_factory=free_port)
    name: str = field(default_factory=lambda: f"attune-fault-{uuid.uuid4().hex[:6]}@localhost")
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2f"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "HOME": str(self.root / "home"),
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.root / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.root / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.root / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(self.root / "rabbitmq.conf"),
        }

    def start(self, timeout: float = 90) -> None:
        server = require_binary(RABBITMQ_SERVER, "RabbitMQ server")
        for sub in ("home", "mnesia", "log"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        (self.root / "enabled_plugins").write_text("[].\n")
        (self.root / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\nloopback_users = none\n"
        )
        log = (self.root / "server.log").open("ab")
        self.process = subprocess.Popen(
            [str(server)], env=self.env(), stdout=log, stderr=log, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"RabbitMQ node exited\n{self.log_tail()}")
            if _amqp_ready(self.url):
                return
            time.sleep(0.5)
        raise AssertionError(f"RabbitMQ node did not start\n{self.log_tail()}")

    def stop(self) -> None:
        """Graceful stop (SIGTERM to the whole process group), then SIGKILL after 30 s."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        # The shell wrapper may exit before the Erlang VM: wait for the group to empty.
        deadline = time.monotonic() + 30
        while _group_alive(self.process.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process = None

    def log_tail(self) -> str:
        path = self.root / "server.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _amqp_ready(url: str) -> bool:
    async def probe() -> bool:
        import aio_pika

        try:
            connection = await asyncio.wait_for(aio_pika.connect(url), 5)
        except Exception:
            return False
        await connection.close()
        return True

    return asyncio.run(probe())


# --------------------------------------------------------------------------- the deployment


@dataclass
class Cluster(Deployment):
    """The scaled deployment as separate processes: api, ``executors`` × executor,
    ``workers`` × worker (fixed names, so a restart keeps the worker's id) and the sensor service.
    """

    executors: int = 1
    workers: int = 1
    commands: dict[str, list[str]] = field(default_factory=dict)

    def start(self) -> Cluster:
        subprocess.run(
            [ATTUNE, "db", "upgrade"], cwd=self.workdir, env=self.env(), check=True, capture_output=True
        )
        self.launch("api", "api")
        self.wait_healthy(timeout=90)
        for n in range(1, self.executors + 1):
            self.launch(f"executor-{n}", "executor")
        for n in range(1, self.workers + 1):
            self.launch(f"worker-{n}", "worker", "--name", f"fault-worker-{n}-{self.port}")
        self.launch("sensor", "sensor")
        self.wait_healthy(timeout=90)
        login = httpx.post(
            f"{self.base}/auth/login", json={"login": "test@attune.local", "password": "TestPass123!"}
        )
        login.raise_for_status()
        self.token = login.json()["data"]["access_token"]
        self.wait_workers(self.workers)
        return self

    def launch(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        self.commands[name] = list(args)
        return self.spawn(name, *args)

    def spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        # The shared PostgreSQL (100 connections) also serves other test runs: bounded pools.
        pool = POOLS.get(args[0], 4) if args else 4
        self.extra_env["ATTUNE__DATABASE__MAX_CONNECTIONS"] = str(pool)
        return super().spawn(name, *args)

    def kill(self, name: str, signum: int = signal.SIGKILL) -> int:
        """Send ``signum`` (default ``kill -9``) to one process and reap it; returns its pid."""
        proc = self.processes[name]
        proc.send_signal(signum)
        proc.wait(timeout=60)
        return proc.pid

    def respawn(self, name: str) -> subprocess.Popen[bytes]:
        """Start ``name`` again with the same command line (same worker name, same id)."""
        return self.spawn(name, *self.commands[name])

    def wait_workers(self, count: int, timeout: float = 90) -> None:
        """Block until ``count`` action workers and the sensor service are live."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = self.get("/api/v1/workers")
            actions = [w for w in rows if w["live"] and w["worker_role"] == "action"]
            sensors = [w for w in rows if w["live"] and w["worker_role"] == "sensor"]
            if len(actions) >= count and sensors:
                return
            time.sleep(0.2)
        raise AssertionError(f"{count} worker(s) and the sensor did not come up\n{self.log_text()}")


@contextlib.contextmanager
def cluster(
    root: Path,
    *,
    database_url: str | None = None,
    bus_url: str | None = None,
    **options: Any,
) -> Iterator[Cluster]:
    """A started :class:`Cluster` on its own database (created on the shared PostgreSQL unless
    ``database_url`` is given) and bus prefix; stopped (and its database dropped) on exit."""
    workdir = make_workdir(root)
    created = ""
    if database_url is None:
        created = f"attune_fault_{uuid.uuid4().hex[:10]}"
        asyncio.run(_create_empty_pg_database(created))
        database_url = f"postgresql://{PG_URL.split('://', 1)[1]}/{created}"
    env = {
        "ATTUNE__EXECUTOR__NO_WORKER_TIMEOUT": "300",
        **options.pop("extra_env", {}),
    }
    options.setdefault("heartbeat_interval", HEARTBEAT)
    deployment = Cluster(
        workdir=workdir,
        database_url=database_url,
        bus_url=bus_url or AMQP_URL,
        mode="scaled",
        extra_env=env,
        **options,
    )
    try:
        deployment.start()
        yield deployment
    finally:
        deployment.stop()
        if created:
            asyncio.run(_drop_pg_database(created))


# --------------------------------------------------------------------------- the workload


@dataclass
class Workload:
    """A webhook trigger, a rule and a shell action (retried when its worker dies)."""

    trigger: str
    rule: str
    action: str
    key: str


def install_workload(d: Deployment, *, command: str = "sleep 0.2; echo done", retries: int = 2) -> Workload:
    """Create pack ``fault``, an action running ``command`` with ``retry.count = retries``
    (``failed`` covers an attempt whose worker died), a webhook trigger and a rule."""
    tag = uuid.uuid4().hex[:6]
    d.post(
        "/api/v1/packs", {"ref": "fault", "label": "Fault tests", "version": "1.0.0"}, expect=(200, 201, 409)
    )
    action = f"fault.work_{tag}"
    d.post(
        "/api/v1/actions",
        {
            "ref": action,
            "pack_ref": "fault",
            "label": action,
            "runtime_ref": "core.shell",
            "entrypoint": command,
            "retry": {"count": retries, "delay": 1, "on": ["failed", "timeout"]},
        },
    )
    trigger = f"fault.hook_{tag}"
    d.post("/api/v1/triggers", {"ref": trigger, "pack_ref": "fault", "label": "Hook"})
    key = d.post(f"/api/v1/triggers/{trigger}/webhooks/enable")["webhook_key"]
    rule = f"fault.rule_{tag}"
    d.post(
        "/api/v1/rules",
        {"ref": rule, "pack_ref": "fault", "label": rule, "trigger_ref": trigger, "action_ref": action},
    )
    return Workload(trigger=trigger, rule=rule, action=action, key=key)


class Burst:
    """Posts ``count`` webhooks from a background thread, ``concurrency`` at a time.

    A sender retries a post that failed (connection error or 5xx) up to ``attempts`` times, as a
    webhook sender would; only 2xx answers count as accepted (their event ids are kept).
    """

    def __init__(self, base: str, key: str, count: int, *, concurrency: int = 16, attempts: int = 20) -> None:
        self.url = f"{base}/api/v1/webhooks/{key}"
        self.count = count
        self.concurrency = concurrency
        self.attempts = attempts
        self.accepted: list[int] = []
        self.rejected = 0
        self.sent = 0
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def start(self) -> Burst:
        self._thread.start()
        return self

    def join(self, timeout: float = 300) -> Burst:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"the burst did not finish in {timeout} s"
        return self

    def wait_accepted(self, n: int, timeout: float = 120) -> None:
        """Block until ``n`` webhooks were accepted (to strike mid-burst)."""
        deadline = time.monotonic() + timeout
        while len(self.accepted) < n:
            assert time.monotonic() < deadline, f"only {len(self.accepted)} of {n} webhooks accepted"
            assert self._thread.is_alive() or len(self.accepted) >= n, "the burst ended early"
            time.sleep(0.05)

    async def _run(self) -> None:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for n in range(self.count):
            queue.put_nowait(n)
        async with httpx.AsyncClient(timeout=30) as client:
            await asyncio.gather(*(self._sender(client, queue) for _ in range(self.concurrency)))

    async def _sender(self, client: httpx.AsyncClient, queue: asyncio.Queue[int]) -> None:
        while not queue.empty():
            n = queue.get_nowait()
            for attempt in range(self.attempts):
                self.sent += 1
                try:
                    response = await client.post(self.url, json={"payload": {"n": n}})
                except httpx.HTTPError:
                    response = None
                if response is not None and 200 <= response.status_code < 300:
                    self.accepted.append(int(response.json()["data"]["event_id"]))
                    break
                await asyncio.sleep(min(0.2 * (attempt + 1), 2.0))
            else:
                self.rejected += 1


# --------------------------------------------------------------------------- the tally


@dataclass
class Tally:
    """What became of the accepted webhooks (see the module docstring)."""

    accepted: int = 0
    completed: int = 0
    failed: int = 0
    lost: int = 0
    duplicated: int = 0
    stuck: int = 0
    details: dict[str, list[int]] = field(default_factory=dict)

    def line(self) -> str:
        return (
            f"accepted {self.accepted} / completed {self.completed} / failed {self.failed} / "
            f"lost {self.lost} / duplicated {self.duplicated} / stuck {self.stuck}"
        )

    @property
    def settled(self) -> bool:
        return self.lost == 0 and self.stuck == 0

    def assert_clean(self, *, failed: int = 0) -> None:
        """Lost, duplicated and stuck are 0; at most ``failed`` chains failed."""
        sample = {name: ids[:10] for name, ids in self.details.items() if ids}
        assert (self.lost, self.duplicated, self.stuck) == (0, 0, 0), f"{self.line()} {sample}"
        assert self.failed <= failed, f"{self.line()} {sample}"
        assert self.completed + self.failed == self.accepted, self.line()


def _async_url(url: str) -> str:
    if url.startswith("postgresql://"):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url.split(":///", 1)[1]
    return url


async def _rows(database_url: str, workload: Workload) -> tuple[list[Any], list[Any]]:
    engine = create_async_engine(_async_url(database_url))
    try:
        async with engine.connect() as conn:
            enforcements = (
                await conn.execute(
                    sa.text("SELECT id, event FROM enforcement WHERE rule_ref = :rule"),
                    {"rule": workload.rule},
                )
            ).all()
            executions = (
                await conn.execute(
                    sa.text(
                        "SELECT id, enforcement, status, original_execution, retry_count, max_retries "
                        "FROM execution WHERE action_ref = :action"
                    ),
                    {"action": workload.action},
                )
            ).all()
    finally:
        await engine.dispose()
    return list(enforcements), list(executions)


async def _query(database_url: str, sql: str, params: dict[str, Any]) -> list[Any]:
    engine = create_async_engine(_async_url(database_url))
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(sa.text(sql), params)).all())
    finally:
        await engine.dispose()


def query(database_url: str, sql: str, **params: Any) -> list[Any]:
    """Rows of one read-only statement against the deployment's database (retried while the
    database refuses connections: it is shared, and may be restarting)."""
    return asyncio.run(retrying(lambda: _query(database_url, sql, params), what="fault tally", patience=120))


def abandoned_before_start(database_url: str, workload: Workload) -> list[int]:
    """Executions ended ``abandoned`` that never started (they should have been rescheduled)."""
    rows = query(
        database_url,
        "SELECT id FROM execution WHERE action_ref = :action AND status = 'abandoned' AND started_at IS NULL",
        action=workload.action,
    )
    return [row[0] for row in rows]


def tally(database_url: str, workload: Workload, accepted: list[int]) -> Tally:
    """One look at the database: what became of each accepted webhook (event id)."""
    enforcements, executions = asyncio.run(
        retrying(lambda: _rows(database_url, workload), what="fault tally", patience=120)
    )
    by_event: dict[int, list[int]] = {}
    for enforcement_id, event_id in enforcements:
        by_event.setdefault(event_id, []).append(enforcement_id)
    roots: dict[int, list[Any]] = {}
    attempts: dict[int, list[Any]] = {}
    for row in executions:
        if row.original_execution is None:
            roots.setdefault(row.enforcement, []).append(row)
        attempts.setdefault(row.original_execution or row.id, []).append(row)
    result = Tally(accepted=len(accepted))
    details: dict[str, list[int]] = {"lost": [], "duplicated": [], "stuck": [], "failed": []}
    for event_id in accepted:
        enforcement_ids = by_event.get(event_id, [])
        chains = [root for enforcement_id in enforcement_ids for root in roots.get(enforcement_id, [])]
        if not chains:
            result.lost += 1
            details["lost"].append(event_id)
            continue
        chain = sorted(attempts.get(chains[0].id, []), key=lambda row: (row.retry_count, row.id))
        completed = [row for row in chain if row.status == "completed"]
        if len(enforcement_ids) > 1 or len(chains) > 1 or len(completed) > 1:
            result.duplicated += 1
            details["duplicated"].append(event_id)
        last = chain[-1]
        retry_due = last.status in RETRIED and last.retry_count < (last.max_retries or 0)
        if last.status not in TERMINAL or retry_due:
            result.stuck += 1
            details["stuck"].append(event_id)
        elif last.status == "completed":
            result.completed += 1
        else:
            result.failed += 1
            details["failed"].append(event_id)
    result.details = details
    return result


def settle(database_url: str, workload: Workload, accepted: list[int], timeout: float | None = None) -> Tally:
    """Tally until nothing is lost or stuck (or ``timeout``: by default 120 s plus a second per
    webhook — generous for a loaded machine; a healthy run settles long before), print the line
    and return it."""
    deadline = time.monotonic() + (timeout if timeout is not None else 120 + 1.0 * len(accepted))
    current = tally(database_url, workload, accepted)
    while not current.settled and time.monotonic() < deadline:
        time.sleep(1.0)
        current = tally(database_url, workload, accepted)
    report(f"[{workload.rule}] {current.line()}")
    return current


def report(line: str) -> None:
    """Print a fault test's tally line and keep it for the session summary."""
    test = os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0]
    print(f"\n{line}")
    REPORTED.append(f"{test}: {line}" if test else line)
