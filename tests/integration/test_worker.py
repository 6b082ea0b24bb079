"""The worker running dispatched executions (docs/packs.md, pipeline contracts).

Each test runs a real ``WorkerService`` in-process on the test backend, creates an action in a
temporary pack, inserts a ``scheduled`` execution assigned to the worker, stages the dispatch
through the outbox and polls the database for the outcome. This module holds that harness (imported
by the other worker tests) and the outcomes of a run; test_worker_timeout_cancel and
test_worker_secrets hold the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from attune.db import models
from attune.db.outbox import enqueue
from attune.domain.enums import ExecutionStatus
from attune.messaging import topology
from attune.messaging.messages import Envelope, MessageType, cancel_routing, dispatch_routing
from attune.platform import Platform
from attune.worker.service import WorkerService

PACK = "wt"
SHELL_CONFIG = {"interpreter": {"binary": "/bin/bash", "args": [], "file_extension": ".sh"}}
ALWAYS = {"verification": {"always_available": True}}
TERMINAL = {"completed", "failed", "timeout", "cancelled", "abandoned"}
DEFAULT_ENV = {"ATTUNE_WORKER_RUNTIMES": "shell,native"}


# --------------------------------------------------------------------------- harness


@dataclass
class RunningWorker:
    service: WorkerService
    stop: asyncio.Event
    task: asyncio.Task[None]
    completed: list[dict[str, Any]] = field(default_factory=list)

    @property
    def id(self) -> int:
        assert self.service.worker_id is not None
        return self.service.worker_id

    async def shutdown(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 30)


@contextlib.asynccontextmanager
async def running_worker(
    platform: Platform, environ: dict[str, str] | None = None, **worker_settings: Any
) -> AsyncIterator[RunningWorker]:
    """Start a WorkerService (unique name, fast heartbeat) and stop it on exit."""
    settings = platform.settings.worker
    settings.name = f"worker-{uuid.uuid4().hex[:8]}"
    settings.heartbeat_interval = 0.5
    settings.shutdown_timeout = 2
    for key, value in worker_settings.items():
        setattr(settings, key, value)
    completed: list[dict[str, Any]] = []

    async def collect(envelope: Envelope) -> None:
        completed.append(envelope.payload)

    spec = topology.QueueSpec(
        f"test.completed.{uuid.uuid4().hex[:8]}", ((topology.EXECUTIONS_EXCHANGE, "execution.completed"),)
    )
    await platform.bus.declare_queue(spec)
    collector = await platform.bus.consume(spec.name, collect)
    service = WorkerService(environ=DEFAULT_ENV if environ is None else environ)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(platform, stop))
    ready = asyncio.create_task(service.ready.wait())
    await asyncio.wait({task, ready}, timeout=20, return_when=asyncio.FIRST_COMPLETED)
    ready.cancel()
    if task.done():
        task.result()  # surfaces the start-up error
    assert service.ready.is_set(), "worker did not start"
    worker = RunningWorker(service, stop, task, completed)
    try:
        yield worker
    finally:
        if not task.done():
            await worker.shutdown()
        await collector.cancel()


async def add_runtime(
    platform: Platform,
    ref: str,
    name: str,
    config: dict[str, Any],
    distributions: dict[str, Any] | None = None,
) -> models.Runtime:
    async with platform.db.transaction() as session:
        row = models.Runtime(
            ref=ref,
            name=name,
            execution_config=config,
            distributions=ALWAYS if distributions is None else distributions,
            pack_ref="core",
        )
        session.add(row)
        await session.flush()
    return row


async def shell_runtime(platform: Platform) -> models.Runtime:
    return await add_runtime(platform, "core.shell", "Shell", SHELL_CONFIG)


async def add_action(
    platform: Platform, name: str, entrypoint: str, runtime_row: models.Runtime | None, **values: Any
) -> models.Action:
    values.setdefault("is_adhoc", True)
    async with platform.db.transaction() as session:
        pack = (await session.execute(sa.select(models.Pack).where(models.Pack.ref == PACK))).scalar()
        if pack is None:
            pack = models.Pack(ref=PACK, label=PACK, version="1.0.0")
            session.add(pack)
            await session.flush()
        action = models.Action(
            ref=f"{PACK}.{name}",
            pack=pack.id,
            pack_ref=PACK,
            label=name,
            description="",
            entrypoint=entrypoint,
            runtime=runtime_row.id if runtime_row is not None else None,
            **values,
        )
        session.add(action)
        await session.flush()
    return action


def pack_file(platform: Platform, name: str, text: str, mode: int = 0o644) -> Path:
    path = platform.settings.packs_base_dir / PACK / "actions" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def stage_dispatch(session: Any, execution: models.Execution, worker_id: int) -> None:
    enqueue(
        session,
        MessageType.EXECUTION_REQUESTED,
        {
            "execution_id": execution.id,
            "worker_id": worker_id,
            "action_ref": execution.action_ref,
            "config": execution.config,
        },
        source_service="executor",
        routing=dispatch_routing(worker_id),
    )


async def dispatch(
    platform: Platform, action: models.Action, worker: RunningWorker, config: Any = None, **values: Any
) -> int:
    """Insert a scheduled execution on ``worker`` and stage its dispatch."""
    values.setdefault("status", ExecutionStatus.SCHEDULED.value)
    async with platform.db.transaction() as session:
        execution = models.Execution(
            action=action.id,
            action_ref=action.ref,
            config=config if config is not None else {},
            worker=worker.id,
            **values,
        )
        session.add(execution)
        await session.flush()
        stage_dispatch(session, execution, worker.id)
    return execution.id


async def redispatch(platform: Platform, execution_id: int, worker: RunningWorker) -> None:
    async with platform.db.transaction() as session:
        execution = await session.get(models.Execution, execution_id)
        assert execution is not None
        stage_dispatch(session, execution, worker.id)


async def execution_row(platform: Platform, execution_id: int) -> models.Execution:
    async with platform.db.session() as session:
        row = await session.get(models.Execution, execution_id)
    assert row is not None
    return row


async def worker_row(platform: Platform, worker_id: int) -> models.Worker:
    async with platform.db.session() as session:
        row = await session.get(models.Worker, worker_id)
    assert row is not None
    return row


async def add_worker_row(
    platform: Platform, name: str, last_heartbeat: datetime, runtimes: Sequence[str] = ("shell",)
) -> models.Worker:
    """An active action worker's row, last heard from at ``last_heartbeat``, with no process behind
    it (liveness and the workers route judge it by the heartbeat alone)."""
    worker = models.Worker(
        name=name,
        worker_type="local",
        worker_role="action",
        status="active",
        capabilities={"runtimes": list(runtimes)},
        last_heartbeat=last_heartbeat,
    )
    async with platform.db.transaction() as session:
        session.add(worker)
        await session.flush()
    return worker


async def request_cancel(platform: Platform, execution_id: int, worker_id: int) -> None:
    """What the cancel route does to a running execution: ``canceling`` + ``ExecutionCancel``."""
    async with platform.db.transaction() as session:
        await session.execute(
            sa.update(models.Execution)
            .where(models.Execution.id == execution_id)
            .values(status=ExecutionStatus.CANCELING.value)
        )
        enqueue(
            session,
            MessageType.EXECUTION_CANCEL,
            {"execution_id": execution_id, "worker_id": worker_id},
            source_service="api",
            routing=cancel_routing(worker_id),
        )


async def wait_status(
    platform: Platform, execution_id: int, statuses: set[str] = TERMINAL, within: float = 15
) -> models.Execution:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        row = await execution_row(platform, execution_id)
        if row.status in statuses:
            return row
        if loop.time() > deadline:
            raise AssertionError(f"execution {execution_id} is still {row.status} (waited for {statuses})")
        await asyncio.sleep(0.05)


async def wait_for(predicate: Any, within: float = 10) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


def exists(path: str) -> bool:
    return Path(path).exists()


def log_dir(platform: Platform, execution_id: int) -> Path:
    assert platform.settings.artifacts_dir is not None
    return platform.settings.artifacts_dir / f"execution_{execution_id}"


async def wait_for_pgid(platform: Platform, execution_id: int) -> int:
    """The action prints ``$$`` first: its pid, which leads its own process group."""
    stdout = log_dir(platform, execution_id) / "stdout.log"
    await wait_for(lambda: stdout.is_file() and stdout.read_text().strip() != "")
    return int(stdout.read_text().split()[0])


# --------------------------------------------------------------------------- outcomes


async def test_exit_zero_completes_with_stdout_and_exit_code(platform: Platform) -> None:
    shell = await shell_runtime(platform)
    action = await add_action(platform, "hello", "echo hello", shell)
    async with running_worker(platform) as worker:
        execution_id = await dispatch(platform, action, worker)
        row = await wait_status(platform, execution_id)
        await wait_for(lambda: any(m["execution_id"] == execution_id for m in worker.completed))

    assert row.status == "completed"
    assert row.result["exit_code"] == 0
    assert row.result["succeeded"] is True
    assert row.result["stdout"] == "hello\n"
    assert row.started_at is not None
    message = next(m for m in worker.completed if m["execution_id"] == execution_id)
    assert message["status"] == "completed"
    assert message["action_ref"] == action.ref
    assert message["action_id"] == action.id
    assert message["result"]["stdout"] == "hello\n"
    assert (log_dir(platform, execution_id) / "stdout.log").read_text() == "hello\n"


async def test_non_zero_exit_fails_with_code_and_stderr(platform: Platform) -> None:
    shell = await shell_runtime(platform)
    action = await add_action(platform, "broken", "echo partial; echo 'disk is full' >&2; exit 3", shell)
    async with running_worker(platform) as worker:
        execution_id = await dispatch(platform, action, worker)
        row = await wait_status(platform, execution_id)
        await wait_for(lambda: any(m["execution_id"] == execution_id for m in worker.completed))

    assert row.status == "failed"
    assert row.result["exit_code"] == 3
    assert row.result["succeeded"] is False
    assert row.result["error"] == "disk is full"
    assert row.result["stdout"] == "partial\n"
    assert row.result["stderr_log"].endswith(f"execution_{execution_id}/stderr.log")
    # The completion message carries the real status, not "completed".
    message = next(m for m in worker.completed if m["execution_id"] == execution_id)
    assert message["status"] == "failed"


async def test_json_output_is_parsed_into_data(platform: Platform) -> None:
    shell = await shell_runtime(platform)
    action = await add_action(
        platform,
        "report",
        """echo 'starting'; echo '{"count": 2, "ok": true}'""",
        shell,
        output_format="json",
    )
    async with running_worker(platform) as worker:
        execution_id = await dispatch(platform, action, worker)
        row = await wait_status(platform, execution_id)

    assert row.status == "completed"
    assert row.result["data"] == {"count": 2, "ok": True}
    assert "stdout" not in row.result


async def test_parameters_arrive_on_stdin_and_file_delivery_is_cleaned_up(platform: Platform) -> None:
    shell = await shell_runtime(platform)
    stdin_action = await add_action(platform, "stdin_params", "cat", shell, parameter_format="dotenv")
    file_action = await add_action(
        platform,
        "file_params",
        'cat "$ATTUNE_PARAMETER_FILE"; echo; echo "$ATTUNE_PARAMETER_FILE" >&2',
        shell,
        parameter_delivery="file",
        parameter_format="json",
    )
    async with running_worker(platform) as worker:
        first = await dispatch(platform, stdin_action, worker, {"name": "it's", "n": 2, "context": {"a": 1}})
        second = await dispatch(platform, file_action, worker, {"name": "x"})
        by_stdin = await wait_status(platform, first)
        by_file = await wait_status(platform, second)

    assert by_stdin.result["stdout"] == "n='2'\nname='it'\\''s'\n---ATTUNE_PARAMS_END---\n"
    assert by_file.status == "completed"
    assert by_file.result["stdout"] == '{"name":"x"}\n'
    param_file = (log_dir(platform, second) / "stderr.log").read_text().strip()
    assert param_file.startswith("/")
    assert not exists(param_file)


async def test_missing_action_file_fails_before_running(platform: Platform) -> None:
    shell = await shell_runtime(platform)
    action = await add_action(platform, "ghost", "ghost.sh", shell, is_adhoc=False)
    async with running_worker(platform) as worker:
        execution_id = await dispatch(platform, action, worker)
        row = await wait_status(platform, execution_id)

    assert row.status == "failed"
    assert row.result["succeeded"] is False
    assert row.result["error"].startswith("Action execution failed: No executable content found")


async def test_a_pack_action_with_an_inline_command_runs(platform: Platform) -> None:
    """#12 item 5: the same action created through the API ran; from a pack YAML it failed."""
    shell = await shell_runtime(platform)
    action = await add_action(platform, "inline", "echo inline works", shell, is_adhoc=False)
    async with running_worker(platform) as worker:
        execution_id = await dispatch(platform, action, worker)
        row = await wait_status(platform, execution_id)

    assert row.status == "completed", row.result
    assert row.result["stdout"] == "inline works\n"


async def test_script_file_in_pack_runs_with_its_interpreter(platform: Platform) -> None:
    shell = await shell_runtime(platform)
    pack_file(platform, "where.sh", 'echo "cwd=$(pwd)"\n')
    action = await add_action(platform, "where", "where.sh", shell, is_adhoc=False)
    async with running_worker(platform) as worker:
        execution_id = await dispatch(platform, action, worker)
        row = await wait_status(platform, execution_id)

    assert row.status == "completed"
    assert row.result["stdout"] == f"cwd={platform.settings.packs_base_dir / PACK}\n"


async def test_native_executable_runs_directly(platform: Platform) -> None:
    native = await add_runtime(platform, "core.native", "Native", {})
    pack_file(platform, "hello-native", '#!/bin/sh\necho "native-ok $0"\n', mode=0o755)
    action = await add_action(platform, "native", "hello-native", native, is_adhoc=False)
    async with running_worker(platform) as worker:
        execution_id = await dispatch(platform, action, worker)
        row = await wait_status(platform, execution_id)

    assert row.status == "completed"
    expected = platform.settings.packs_base_dir / PACK / "actions" / "hello-native"
    assert row.result["stdout"] == f"native-ok {expected}\n"
