"""Stage-by-stage latency of webhook → rule → ``core.noop`` → completed on the embedded server.

Fires one webhook at a time and reads each stage's time from the rows themselves (event,
enforcement and execution ``created``, the execution's status history), then prints the median of
every stage. Usage: ``.venv/bin/python bench/stages.py [--samples 30]``.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from pipeline import _setup, _ts  # bench/ is the script's directory, hence on sys.path

from attune.testing.deployment import Deployment, make_workdir

STAGES = (
    "webhook → event",
    "event → enforcement",
    "enforcement → execution",
    "execution → scheduled",
    "scheduled → running",
    "running → completed",
    "webhook → completed",
)
WARM_UP = 3


def _completed_after(d: Deployment, previous: int | None) -> dict[str, Any]:
    while True:
        rows = d.get("/api/v1/executions", params={"rule_ref": "bench.noop", "per_page": 1})
        if rows and rows[0]["status"] == "completed" and rows[0]["id"] != previous:
            return dict(rows[0])
        time.sleep(0.005)


def _sample(d: Deployment, client: httpx.Client, key: str, previous: int | None) -> tuple[int, list[float]]:
    sent = time.time()
    client.post(f"{d.base}/api/v1/webhooks/{key}", json={"payload": {"n": 1}}).raise_for_status()
    execution = d.get(f"/api/v1/executions/{_completed_after(d, previous)['id']}")
    enforcement = d.get(f"/api/v1/enforcements/{execution['enforcement']}")
    event = d.get(f"/api/v1/events/{enforcement['event']}")
    history = d.get(f"/api/v1/executions/{execution['id']}/history", params={"changed_field": "status"})
    at = {
        (row.get("new_values") or {}).get("status"): _ts(row["time"])
        for row in history
        if (row.get("new_values") or {}).get("status")
    }
    created = _ts(execution["created"])
    points = [
        sent,
        _ts(event["created"]),
        _ts(enforcement["created"]),
        created,
        at.get("scheduled", created),
        at.get("running", created),
        at.get("completed", _ts(execution["updated"])),
    ]
    durations = [later - earlier for earlier, later in itertools.pairwise(points)]
    return int(execution["id"]), [*durations, points[-1] - sent]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=30)
    args = parser.parse_args()
    workdir = make_workdir(Path(tempfile.mkdtemp(prefix="attune-stages-")))
    d = Deployment(
        workdir=workdir,
        database_url=f"sqlite:///{workdir / 'data' / 'attune.db'}",
        bus_url="memory://",
        mode="embedded",
        heartbeat_interval=5,
    )
    d.extra_env["ATTUNE__LOG__LEVEL"] = "warn"
    d.start()
    try:
        key = _setup(d)
        samples: list[list[float]] = []
        previous: int | None = None
        with httpx.Client() as client:
            for n in range(args.samples + WARM_UP):
                previous, durations = _sample(d, client, key, previous)
                if n >= WARM_UP:
                    samples.append(durations)
        for index, stage in enumerate(STAGES):
            print(f"{stage:26s} p50 {statistics.median(s[index] for s in samples) * 1000:6.1f} ms")
    finally:
        d.stop()


if __name__ == "__main__":
    main()
