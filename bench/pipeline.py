"""Pipeline benchmark: webhook → rule → ``core.noop`` execution → completed.

Prints, for the embedded and the scaled deployment:
* latency from the webhook request to the execution's completion (p50/p99 over sequential samples);
* sustained completed executions per second while webhooks are fired continuously.

Usage: ``.venv/bin/python bench/pipeline.py [--mode embedded|scaled|both] [--duration 30] [--samples 100]``
The scaled mode needs PostgreSQL on 127.0.0.1:5432 and RabbitMQ on 127.0.0.1:5672.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from attune.testing.deployment import Deployment, make_workdir

PG_ADMIN = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
AMQP = "amqp://guest:guest@127.0.0.1:5672/%2f"


async def _pg(statement: str) -> None:
    engine = create_async_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(sa.text(statement))
    await engine.dispose()


def _ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _setup(d: Deployment) -> str:
    d.post("/api/v1/packs", {"ref": "bench", "label": "Bench", "version": "1.0.0"})
    d.post("/api/v1/triggers", {"ref": "bench.hook", "pack_ref": "bench", "label": "Hook"})
    key: str = d.post("/api/v1/triggers/bench.hook/webhooks/enable")["webhook_key"]
    d.post(
        "/api/v1/rules",
        {
            "ref": "bench.noop",
            "pack_ref": "bench",
            "label": "noop",
            "trigger_ref": "bench.hook",
            "action_ref": "core.noop",
        },
    )
    return key


def _newest(d: Deployment) -> dict[str, Any] | None:
    rows = d.get("/api/v1/executions", params={"rule_ref": "bench.noop", "per_page": 1})
    return rows[0] if rows else None


def measure_latency(d: Deployment, key: str, samples: int) -> list[float]:
    """Sequential webhooks; each latency = completion time (server clock) − send time (same host)."""
    latencies: list[float] = []
    client = httpx.Client(timeout=10)
    for _ in range(samples):
        before = _newest(d)
        sent = time.time()
        client.post(f"{d.base}/api/v1/webhooks/{key}", json={"payload": {"n": 1}}).raise_for_status()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            newest = _newest(d)
            if (
                newest
                and (before is None or newest["id"] != before["id"])
                and newest["status"] == "completed"
            ):
                latencies.append((_ts(newest["updated"]) - sent) * 1000)
                break
            time.sleep(0.002)
    client.close()
    return latencies


async def _fire(base: str, key: str, stop_at: float, counter: list[int]) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        while time.monotonic() < stop_at:
            response = await client.post(f"{base}/api/v1/webhooks/{key}", json={"payload": {"n": 2}})
            if response.status_code == 200:
                counter[0] += 1


def measure_throughput(d: Deployment, key: str, duration: float, concurrency: int = 8) -> tuple[float, int]:
    """Fire webhooks for ``duration`` seconds; count executions that completed inside the window."""
    start_wall = time.time()
    counter = [0]

    async def run() -> None:
        stop_at = time.monotonic() + duration
        await asyncio.gather(*(_fire(d.base, key, stop_at, counter) for _ in range(concurrency)))

    asyncio.run(run())
    end_wall = time.time()
    time.sleep(2)
    completed = 0
    page = 1
    while True:
        rows = d.get(
            "/api/v1/executions",
            params={"rule_ref": "bench.noop", "status": "completed", "per_page": 100, "page": page},
        )
        completed += sum(1 for r in rows if start_wall <= _ts(r["updated"]) <= end_wall)
        if len(rows) < 100:
            break
        page += 1
    return completed / duration, counter[0]


def run_mode(mode: str, duration: float, samples: int) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix=f"attune-bench-{mode}-"))
    workdir = make_workdir(root)
    database = ""
    if mode == "scaled":
        database = f"attune_bench_{uuid.uuid4().hex[:8]}"
        asyncio.run(_pg(f'CREATE DATABASE "{database}"'))
        db_url, bus_url = f"postgresql://postgres@127.0.0.1:5432/{database}", AMQP
    else:
        db_url, bus_url = f"sqlite:///{workdir / 'data' / 'attune.db'}", "memory://"
    d = Deployment(workdir=workdir, database_url=db_url, bus_url=bus_url, mode=mode, heartbeat_interval=5)
    d.extra_env["ATTUNE__LOG__LEVEL"] = "warn"
    d.extra_env["ATTUNE__WORKER__MAX_CONCURRENT_TASKS"] = "16"
    try:
        d.start()
        key = _setup(d)
        measure_latency(d, key, 5)  # warm-up
        latencies = sorted(measure_latency(d, key, samples))
        rate, fired = measure_throughput(d, key, duration)
    finally:
        d.stop()
        if database:
            asyncio.run(_pg(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
    return {
        "mode": mode,
        "p50_ms": statistics.median(latencies) if latencies else float("nan"),
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        if latencies
        else float("nan"),
        "samples": len(latencies),
        "per_second": rate,
        "webhooks_fired": fired,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mode", choices=["embedded", "scaled", "both"], default="both")
    parser.add_argument("--duration", type=float, default=30)
    parser.add_argument("--samples", type=int, default=100)
    args = parser.parse_args()
    modes = ["embedded", "scaled"] if args.mode == "both" else [args.mode]
    print(f"machine: {platform.node()} {platform.machine()} python {platform.python_version()}")
    print(
        f"{'deployment':<10} {'p50 ms':>8} {'p99 ms':>8} {'samples':>8} {'completed/s':>12} {'webhooks':>9}"
    )
    for mode in modes:
        r = run_mode(mode, args.duration, args.samples)
        print(
            f"{r['mode']:<10} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} {r['samples']:>8} "
            f"{r['per_second']:>12.1f} {r['webhooks_fired']:>9}"
        )


if __name__ == "__main__":
    main()
