"""``kill -9`` of one scaled process in the middle of a webhook burst (docs/operations.md
"Guarantees", scaled deployment): nothing accepted is lost, nothing runs twice, nothing is stuck.

Each test prints ``accepted / completed / failed / lost / duplicated / stuck``.
"""

from __future__ import annotations

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


def _side_effect_pids(marker: Path) -> list[int]:
    return [int(line) for line in marker.read_text().split()] if marker.exists() else []


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"


def test_worker_kill_mid_burst_loses_nothing_and_kills_its_actions(
    deployment: harness.Cluster, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    # The action leaves a setsid'd grandchild behind: it must die with the worker.
    workload = harness.install_workload(
        deployment, command=f"setsid sleep 345 & echo $! >> {pids}; sleep 0.5; echo done"
    )
    burst = harness.Burst(deployment.base, workload.key, BURST).start()
    burst.wait_accepted(BURST // 3)
    deployment.kill("worker-1")
    time.sleep(1.0)
    deployment.respawn("worker-1")
    burst.join()
    result = harness.settle(deployment.database_url, workload, burst.accepted)
    result.assert_clean()
    assert result.accepted == BURST
    leftovers = [pid for pid in _side_effect_pids(pids) if _alive(pid)]
    deployment.stop()
    survivors = [pid for pid in leftovers if _alive(pid)]
    assert not survivors, f"action processes outlived their worker: {survivors}"
