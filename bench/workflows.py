"""Workflow benchmark: engine overhead per task and with_items throughput.

Prints, for one deployment (embedded by default):
* 40 sequential ``core.noop`` tasks: total wall time, and the engine overhead per task =
  (workflow wall time − sum of the children's lifetimes, created → finished) / 40; also the
  platform overhead per task = (wall time − sum of the processes' own run times) / 40;
* the wall time of a with_items task of 1,000 and 10,000 ``core.noop`` items (concurrency 50);
* the peak resident memory (VmHWM) of the server process(es).

Usage: ``.venv/bin/python bench/workflows.py [--mode embedded|scaled] [--items 1000,10000]``
The scaled mode needs PostgreSQL on 127.0.0.1:5432 and RabbitMQ on 127.0.0.1:5672.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from attune.testing.deployment import Deployment, make_workdir

PG_ADMIN = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
AMQP = "amqp://guest:guest@127.0.0.1:5672/%2f"
SEQUENTIAL_TASKS = 40
CONCURRENCY = 50


async def _pg(statement: str) -> None:
    engine = create_async_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(sa.text(statement))
    await engine.dispose()


def _ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _setup(d: Deployment) -> None:
    d.post("/api/v1/packs", {"ref": "bench", "label": "Bench", "version": "1.0.0"})
    tasks = [
        {
            "name": f"t{i}",
            "action": "core.noop",
            **(
                {"next": [{"when": "{{ succeeded() }}", "do": [f"t{i + 1}"]}]}
                if i + 1 < SEQUENTIAL_TASKS
                else {}
            ),
        }
        for i in range(SEQUENTIAL_TASKS)
    ]
    d.post(
        "/api/v1/workflows",
        {
            "ref": "bench.chain",
            "pack_ref": "bench",
            "label": "chain",
            "version": "1.0.0",
            "definition": {"tasks": tasks},
        },
    )
    d.post(
        "/api/v1/workflows",
        {
            "ref": "bench.items",
            "pack_ref": "bench",
            "label": "items",
            "version": "1.0.0",
            "param_schema": {"items": {"type": "array", "required": True}},
            "definition": {
                "parameters": {"items": {"type": "array", "required": True}},
                "tasks": [
                    {
                        "name": "each",
                        "action": "core.noop",
                        "with_items": "{{ parameters.items }}",
                        "concurrency": CONCURRENCY,
                        "input": {"message": "n{{ item }}"},
                    }
                ],
            },
        },
    )


def _wait(d: Deployment, execution_id: int, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data: dict[str, Any] = d.get(f"/api/v1/executions/{execution_id}")
        if data["status"] in ("completed", "failed", "cancelled"):
            return data
        time.sleep(0.2)
    raise TimeoutError(f"execution {execution_id} did not finish within {timeout} s")


def _children(d: Deployment, parent: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    page = 1
    while True:
        batch = d.get("/api/v1/executions", params={"parent": parent, "per_page": 100, "page": page})
        rows += batch
        if len(batch) < 100:
            return rows
        page += 1


def measure_chain(d: Deployment) -> dict[str, float]:
    execution = _wait(d, int(d.post("/api/v1/executions/execute", {"action_ref": "bench.chain"})["id"]), 300)
    assert execution["status"] == "completed", execution
    wall = _ts(execution["updated"]) - _ts(execution["created"])
    lifetimes = 0.0
    process = 0.0
    for child in _children(d, execution["id"]):
        full = d.get(f"/api/v1/executions/{child['id']}")
        lifetimes += _ts(full["updated"]) - _ts(full["created"])
        process += float((full.get("result") or {}).get("duration_ms") or 0) / 1000
    return {
        "wall_s": wall,
        "engine_overhead_ms": (wall - lifetimes) / SEQUENTIAL_TASKS * 1000,
        "platform_overhead_ms": (wall - process) / SEQUENTIAL_TASKS * 1000,
    }


def measure_items(d: Deployment, count: int) -> tuple[float, str]:
    started = time.monotonic()
    data = d.post(
        "/api/v1/executions/execute",
        {"action_ref": "bench.items", "parameters": {"items": list(range(count))}},
    )
    execution = _wait(d, int(data["id"]), 3600)
    elapsed = time.monotonic() - started
    if execution["status"] != "completed":
        failed = [c for c in _children(d, execution["id"]) if c["status"] != "completed"]
        for child in failed[:3]:
            print("  failed item:", d.get(f"/api/v1/executions/{child['id']}").get("result"), flush=True)
    return elapsed, execution["status"]


def peak_rss(d: Deployment) -> dict[str, int]:
    """VmHWM (kB) of every process of the deployment."""
    peaks: dict[str, int] = {}
    for name, proc in d.processes.items():
        try:
            for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks[name] = int(line.split()[1])
        except FileNotFoundError:
            continue
    return peaks


def run(mode: str, items: list[int]) -> None:
    root = Path(tempfile.mkdtemp(prefix=f"attune-wfbench-{mode}-"))
    workdir = make_workdir(root)
    database = ""
    if mode == "scaled":
        database = f"attune_wfbench_{uuid.uuid4().hex[:8]}"
        asyncio.run(_pg(f'CREATE DATABASE "{database}"'))
        db_url, bus_url = f"postgresql://postgres@127.0.0.1:5432/{database}", AMQP
    else:
        db_url, bus_url = f"sqlite:///{workdir / 'data' / 'attune.db'}", "memory://"
    d = Deployment(workdir=workdir, database_url=db_url, bus_url=bus_url, mode=mode, heartbeat_interval=5)
    d.extra_env["ATTUNE__LOG__LEVEL"] = "warn"
    d.extra_env["ATTUNE__WORKER__MAX_CONCURRENT_TASKS"] = str(CONCURRENCY)
    d.extra_env["ATTUNE__EXECUTOR__NO_WORKER_TIMEOUT"] = "600"
    try:
        d.start()
        _setup(d)
        chain = measure_chain(d)
        print(
            f"{SEQUENTIAL_TASKS} sequential core.noop tasks: {chain['wall_s']:.2f} s total; "
            f"engine overhead {chain['engine_overhead_ms']:.1f} ms/task; "
            f"platform overhead {chain['platform_overhead_ms']:.1f} ms/task",
            flush=True,
        )
        for count in items:
            elapsed, status = measure_items(d, count)
            print(
                f"with_items {count} core.noop (concurrency {CONCURRENCY}): {elapsed:.1f} s ({status}), "
                f"{count / elapsed:.1f} items/s",
                flush=True,
            )
        for name, kb in peak_rss(d).items():
            print(f"peak RSS {name}: {kb / 1024:.1f} MiB")
    finally:
        d.stop()
        if database:
            asyncio.run(_pg(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mode", choices=["embedded", "scaled"], default="embedded")
    parser.add_argument("--items", default="1000,10000", help="Comma-separated with_items sizes")
    args = parser.parse_args()
    print(
        f"machine: {platform.node()} {platform.machine()} "
        f"python {platform.python_version()}; mode {args.mode}"
    )
    run(args.mode, [int(n) for n in args.items.split(",") if n.strip()])


if __name__ == "__main__":
    main()
