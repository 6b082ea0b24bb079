"""The scaled deployment under load and ``kill -9`` (docs/operations.md "Guarantees"): two
executors, two workers, the API and the sensor service as separate processes on PostgreSQL and
RabbitMQ. Nothing accepted is lost, nothing runs twice, nothing stays stuck.

Each test prints ``accepted / completed / failed / lost / duplicated / stuck``. The tests share
one deployment (starting one takes a while on a small machine); each uses its own webhook,
rule and action, and leaves every process running again.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults import harness

pytestmark = pytest.mark.slow

BURST = 200
BIG_BURST = 1000


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[harness.Cluster]:
    harness.require_scaled_backend()
    with harness.cluster(tmp_path_factory.mktemp("scaled"), executors=2, workers=2) as running:
        yield running


def _pids(path: Path, token: str | None = None) -> list[int]:
    """Pids in ``path`` (lines ``<pid> <cookie>``), those of worker process ``token`` only if given."""
    lines = [line.split() for line in path.read_text().splitlines()] if path.exists() else []
    return [
        int(parts[0]) for parts in lines if parts and (token is None or parts[-1].startswith(f"{token}:"))
    ]


def _boot_token(deployment: harness.Cluster, process: str) -> str:
    """The token of a worker process (``meta.boot`` of its row): its actions' cookie prefix."""
    name = f"fault-{process}-{deployment.port}"
    [(meta,)] = harness.query(
        deployment.database_url, "SELECT meta FROM worker WHERE name = :name", name=name
    )
    meta = json.loads(meta) if isinstance(meta, str) else meta
    return str(meta["boot"])


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"


def _wait_dead(pids: list[int], timeout: float = 15) -> list[int]:
    deadline = time.monotonic() + timeout
    alive = [pid for pid in pids if _alive(pid)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [pid for pid in alive if _alive(pid)]
    return alive


@pytest.fixture
def detached(tmp_path: Path) -> Iterator[Path]:
    """The file where actions write the pid of the ``setsid`` child they leave behind; whatever
    is still alive at the end is killed (so a failing test leaves nothing running)."""
    path = tmp_path / "detached"
    yield path
    for pid in _pids(path):
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_a_thousand_webhooks_on_two_executors_and_two_workers(deployment: harness.Cluster) -> None:
    workload = harness.install_workload(deployment, command="echo done", retries=0)
    burst = harness.Burst(deployment.base, workload.key, BIG_BURST, concurrency=24).start().join(600)
    result = harness.settle(deployment.database_url, workload, burst.accepted)
    result.assert_clean()
    assert (result.accepted, result.completed) == (BIG_BURST, BIG_BURST)


def test_worker_kill_mid_burst(deployment: harness.Cluster, detached: Path) -> None:
    """``kill -9`` of a worker with 200 webhooks in flight, restarted after the liveness cut-off:
    its never-started runs are rescheduled, the runs that died with it are retried (the action's
    retry policy), and the processes they left behind (``setsid``) die with it."""
    workload = harness.install_workload(
        deployment,
        command=f'setsid sleep 345 & echo "$! $ATTUNE_PROCESS_COOKIE" >> {detached}; sleep 0.5; echo done',
        retries=1,
    )
    burst = harness.Burst(deployment.base, workload.key, BURST).start()
    burst.wait_accepted(BURST // 3)
    token = _boot_token(deployment, "worker-1")
    deployment.kill("worker-1")
    at_kill = _pids(detached, token)
    assert at_kill, "the killed worker had run nothing yet"
    # Past 1.5 heartbeat intervals, so the executors' liveness sweep acts before the restart.
    time.sleep(1.5 * harness.HEARTBEAT + 2)
    deployment.respawn("worker-1")
    burst.join()
    result = harness.settle(deployment.database_url, workload, burst.accepted)
    result.assert_clean()
    assert result.accepted == BURST
    assert harness.abandoned_before_start(deployment.database_url, workload) == []
    assert _wait_dead(at_kill) == [], "action processes outlived the killed worker"
    deployment.wait_workers(2)


def test_worker_kill_and_quick_restart_mid_burst(deployment: harness.Cluster) -> None:
    """Restarted before anyone noticed: the worker itself takes back what it owned."""
    workload = harness.install_workload(deployment, command="sleep 0.5; echo done", retries=1)
    burst = harness.Burst(deployment.base, workload.key, BURST).start()
    burst.wait_accepted(BURST // 3)
    deployment.kill("worker-2")
    deployment.respawn("worker-2")
    burst.join()
    result = harness.settle(deployment.database_url, workload, burst.accepted)
    result.assert_clean()
    assert result.accepted == BURST
    assert harness.abandoned_before_start(deployment.database_url, workload) == []
    deployment.wait_workers(2)


def test_executor_kill_mid_burst(deployment: harness.Cluster) -> None:
    workload = harness.install_workload(deployment, command="sleep 0.2; echo done", retries=0)
    burst = harness.Burst(deployment.base, workload.key, BURST).start()
    burst.wait_accepted(BURST // 3)
    deployment.kill("executor-1")
    time.sleep(1.0)
    deployment.respawn("executor-1")
    burst.join()
    result = harness.settle(deployment.database_url, workload, burst.accepted)
    result.assert_clean()
    assert (result.accepted, result.completed) == (BURST, BURST)


def test_sensor_kill_mid_burst(deployment: harness.Cluster) -> None:
    """Webhooks do not go through the sensor service; its restart keeps its worker row."""
    before = {w["name"]: w["id"] for w in deployment.get("/api/v1/workers") if w["worker_role"] == "sensor"}
    workload = harness.install_workload(deployment, command="sleep 0.2; echo done", retries=0)
    burst = harness.Burst(deployment.base, workload.key, BURST).start()
    burst.wait_accepted(BURST // 3)
    deployment.kill("sensor")
    time.sleep(1.0)
    deployment.respawn("sensor")
    burst.join()
    result = harness.settle(deployment.database_url, workload, burst.accepted)
    result.assert_clean()
    assert (result.accepted, result.completed) == (BURST, BURST)
    deployment.wait_workers(2)
    after = {w["name"]: w["id"] for w in deployment.get("/api/v1/workers") if w["worker_role"] == "sensor"}
    assert after == before
