"""PostgreSQL and RabbitMQ restarted under load (docs/operations.md "Guarantees"): every process
of the scaled deployment reconnects with backoff and says so in its log, and nothing accepted is
lost, duplicated or stuck. Both servers are *private* instances started by the test (never the
shared ones other tests use).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults import harness

pytestmark = pytest.mark.slow

BURST = 200
OUTAGE_SECONDS = 3.0


@pytest.fixture
def private_postgres() -> Iterator[harness.PrivatePostgres]:
    harness.require_scaled_backend()
    # Outside pytest's private temporary directory: the server runs as the postgres user.
    root = Path(tempfile.mkdtemp(prefix="attune-fault-pg-"))
    server = harness.PrivatePostgres(root)
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def private_rabbitmq(tmp_path: Path) -> Iterator[harness.PrivateRabbitMQ]:
    harness.require_scaled_backend()
    server = harness.PrivateRabbitMQ(tmp_path / "rabbitmq")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _logs_say(deployment: harness.Cluster, *phrases: str) -> None:
    for name in ("executor-1", "worker-1"):
        text = (deployment.workdir / f"{name}.log").read_text(errors="replace")
        for phrase in phrases:
            assert phrase in text, f"{name}.log does not say {phrase!r}"


def test_postgresql_restart_under_load(private_postgres: harness.PrivatePostgres, tmp_path: Path) -> None:
    database = private_postgres.create_database("attune_fault")
    with harness.cluster(tmp_path / "deployment", database_url=database) as deployment:
        workload = harness.install_workload(deployment, command="sleep 0.3; echo done", retries=0)
        burst = harness.Burst(deployment.base, workload.key, BURST).start()
        burst.wait_accepted(BURST // 3)
        private_postgres.stop("fast")
        time.sleep(OUTAGE_SECONDS)
        private_postgres.start()
        burst.join()
        result = harness.settle(deployment.database_url, workload, burst.accepted)
        result.assert_clean()
        assert (result.accepted, result.completed) == (BURST, BURST)
        _logs_say(deployment, "lost the connection to the database", "reconnected to the database")


def test_rabbitmq_restart_under_load(private_rabbitmq: harness.PrivateRabbitMQ, tmp_path: Path) -> None:
    with harness.cluster(tmp_path / "deployment", bus_url=private_rabbitmq.url) as deployment:
        workload = harness.install_workload(deployment, command="sleep 0.3; echo done", retries=0)
        burst = harness.Burst(deployment.base, workload.key, BURST).start()
        burst.wait_accepted(BURST // 3)
        private_rabbitmq.stop()
        time.sleep(OUTAGE_SECONDS)
        private_rabbitmq.start()
        burst.join()
        result = harness.settle(deployment.database_url, workload, burst.accepted)
        result.assert_clean()
        assert (result.accepted, result.completed) == (BURST, BURST)
        _logs_say(deployment, "lost the connection to RabbitMQ", "reconnected to RabbitMQ")
