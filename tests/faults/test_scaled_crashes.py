"""``kill -9`` of one scaled process in the middle of a webhook burst (docs/operations.md
"Guarantees", scaled deployment): nothing accepted is lost, nothing runs twice, nothing is stuck.

Each test prints ``accepted / completed / failed / lost / duplicated / stuck``.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults import harness

pytestmark = pytest.mark.slow

BURST = 200


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[harness.Cluster]:
    harness.require_scaled_backend()
    with harness.cluster(tmp_path) as running:
        yield running


def _pids(path: Path) -> list[int]:
    return [int(line) for line in path.read_text().split()] if path.exists() else []


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


def test_worker_kill_mid_burst(deployment: harness.Cluster, detached: Path) -> None:
    """``kill -9`` of the only worker with 200 webhooks in flight, restarted after the liveness
    cut-off: never-started runs are rescheduled, runs that died with it are retried (the action's
    retry policy), and the processes they left behind die with the worker."""
    workload = harness.install_workload(
        deployment, command=f"setsid sleep 345 & echo $! >> {detached}; sleep 0.5; echo done", retries=1
    )
    burst = harness.Burst(deployment.base, workload.key, BURST).start()
    burst.wait_accepted(BURST // 3)
    deployment.kill("worker-1")
    at_kill = _pids(detached)
    # Past 1.5 heartbeat intervals, so the executor's liveness sweep acts before the restart.
    time.sleep(4.0)
    deployment.respawn("worker-1")
    burst.join()
    result = harness.settle(deployment.database_url, workload, burst.accepted)
    result.assert_clean()
    assert result.accepted == BURST
    assert harness.abandoned_before_start(deployment.database_url, workload) == []
    assert _wait_dead(at_kill) == [], "action processes outlived the killed worker"
    deployment.stop()
    assert _wait_dead(_pids(detached)) == [], "action processes outlived the stopped worker"
