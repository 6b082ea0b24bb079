"""The worker's own cost per run, without the rest of the pipeline (docs/performance.md).

Opens a platform on a fresh SQLite database (in-memory bus) in this process, registers a shell
action (``echo hello``) and a Python action (``pass``), and runs each execution through
:func:`attune.worker.run_execution.run_execution` — claim, preparation, process, finish — one at a
time, as the worker does after a dispatch handed over in its process (the claim deletes the
dispatch's outbox row). Prints, per action, the wall time per run (p50) and
the CPU time per run of this process and of the action processes it reaped.

    .venv/bin/python bench/worker_run.py [--runs 300] [--warm 20] [--profile out.prof]

``--profile`` writes a cProfile of the shell runs (``python -m pstats out.prof``).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from attune.db import models
from attune.db.outbox import outbox_row
from attune.domain.enums import ExecutionStatus
from attune.messaging.messages import MessageType, dispatch_routing
from attune.platform import Platform, open_platform
from attune.settings import load_settings
from attune.worker.run_execution import run_execution

PACK = "wbench"
SHELL = {"interpreter": {"binary": "/bin/sh", "args": [], "file_extension": ".sh"}}
PYTHON = {"interpreter": {"binary": sys.executable, "args": ["-u"], "file_extension": ".py"}}
ALWAYS = {"verification": {"always_available": True}}


async def _schema(url: str) -> None:
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(models.Base.metadata.create_all)
    await engine.dispose()


async def _setup(platform: Platform, packs: Path) -> tuple[int, list[models.Action]]:
    actions_dir = packs / PACK / "actions"
    actions_dir.mkdir(parents=True)
    (actions_dir / "echo_hello.sh").write_text("#!/bin/sh\necho hello\n")
    (actions_dir / "py_pass.py").write_text("pass\n")
    async with platform.db.transaction() as session:
        pack = models.Pack(ref=PACK, label=PACK, version="1.0.0")
        session.add(pack)
        await session.flush()
        found: list[models.Action] = []
        for name, ref, config, entry in (
            ("Shell", "core.shell", SHELL, "echo_hello.sh"),
            ("Python", "core.python", PYTHON, "py_pass.py"),
        ):
            runtime = models.Runtime(
                ref=ref, name=name, execution_config=config, distributions=ALWAYS, pack_ref="core"
            )
            session.add(runtime)
            await session.flush()
            action = models.Action(
                ref=f"{PACK}.{Path(entry).stem}",
                pack=pack.id,
                pack_ref=PACK,
                label=entry,
                description="",
                entrypoint=entry,
                runtime=runtime.id,
            )
            session.add(action)
            found.append(action)
        worker = models.Worker(
            name="bench-worker",
            worker_type="local",
            worker_role="action",
            status="active",
            capabilities={"runtimes": ["shell", "python"]},
            last_heartbeat=platform.clock.now(),
        )
        session.add(worker)
        await session.flush()
    return worker.id, found


async def _scheduled(platform: Platform, action: models.Action, worker_id: int) -> tuple[int, str]:
    """A scheduled execution and its dispatch's outbox row, kept from the relay as the embedded
    server's hand-off keeps it (the claim deletes it); -> (execution id, message id)."""
    async with platform.db.transaction() as session:
        execution = models.Execution(
            action=action.id,
            action_ref=action.ref,
            config={},
            worker=worker_id,
            status=ExecutionStatus.SCHEDULED.value,
        )
        session.add(execution)
        await session.flush()
        payload = {"execution_id": execution.id, "worker_id": worker_id, "action_ref": action.ref}
        envelope, row = outbox_row(
            MessageType.EXECUTION_REQUESTED,
            payload,
            source_service="executor",
            routing=dispatch_routing(worker_id),
        )
        session.add(models.OutboxMessage(**row))
        return execution.id, envelope.message_id


def _cpu() -> tuple[float, float]:
    times = os.times()
    return times.user + times.system, times.children_user + times.children_system


async def _measure(
    platform: Platform, action: models.Action, worker_id: int, runs: int, warm: int, prof: Any
) -> dict[str, float]:
    walls: list[float] = []
    own = children = 0.0
    for index in range(warm + runs):
        execution_id, message_id = await _scheduled(platform, action, worker_id)
        timed = index >= warm
        own0, children0 = _cpu()
        started = time.perf_counter()
        if timed and prof is not None:
            prof.enable()
        status = await run_execution(
            platform, worker_id, execution_id, asyncio.Event(), handed_off=message_id
        )
        if timed and prof is not None:
            prof.disable()
        wall = time.perf_counter() - started
        own1, children1 = _cpu()
        if status != "completed":
            raise SystemExit(f"{action.ref} ended {status}")
        if timed:
            walls.append(wall)
            own += own1 - own0
            children += children1 - children0
    return {
        "p50_ms": statistics.median(walls) * 1000,
        "cpu_ms": own * 1000 / runs,
        "children_cpu_ms": children * 1000 / runs,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--warm", type=int, default=20)
    parser.add_argument("--profile", type=Path)
    parser.add_argument("--only", default="shell,python")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="attune-worker-bench-") as tmp:
        root = Path(tmp)
        url = f"sqlite:///{root / 'attune.db'}"
        await _schema(url.replace("sqlite://", "sqlite+aiosqlite://"))
        settings = load_settings(
            None,
            {
                "data_dir": str(root / "data"),
                "packs_base_dir": str(root / "packs"),
                "database": {"url": url},
                "message_queue": {"url": "memory://"},
                "security": {"jwt_secret": "x" * 40, "encryption_key": "k" * 40},
                "worker": {"in_process_actions": False},
            },
            ensure_secrets=False,
            read_files=False,
        )
        async with open_platform(settings) as platform:
            worker_id, (shell, python) = await _setup(platform, root / "packs")
            prof = cProfile.Profile() if args.profile else None
            chosen = set(args.only.split(","))
            if "shell" in chosen:
                shell_figures = await _measure(platform, shell, worker_id, args.runs, args.warm, prof)
                print(f"shell `echo hello`: {_line(shell_figures)}")
            if prof is not None and args.profile is not None:
                prof.dump_stats(args.profile)
            if "python" in chosen:
                python_figures = await _measure(platform, python, worker_id, args.runs, args.warm, None)
                print(f"python `pass`:      {_line(python_figures)}")
            async with platform.db.session() as session:
                count = await session.scalar(sa.select(sa.func.count()).select_from(models.Execution))
            print(f"({count} executions; load average {os.getloadavg()[0]:.2f})")


def _line(figures: dict[str, float]) -> str:
    return (
        f"wall p50 {figures['p50_ms']:.2f} ms, worker CPU {figures['cpu_ms']:.2f} ms/run, "
        f"action processes {figures['children_cpu_ms']:.2f} ms/run"
    )


if __name__ == "__main__":
    asyncio.run(main())
