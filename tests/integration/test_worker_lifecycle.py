"""Worker registration, heartbeat, capabilities, shutdown, runtime versions and pack environments
(docs/packs.md)."""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from typing import Any

import httpx
import sqlalchemy as sa

from attune.db import models
from attune.db.outbox import enqueue
from attune.messaging.messages import MessageType
from attune.platform import Platform
from attune.testing.clock import FakeClock
from attune.worker.process import group_alive
from tests.integration.test_worker import (
    PACK,
    SHELL_CONFIG,
    add_action,
    add_runtime,
    add_worker_row,
    dispatch,
    running_worker,
    shell_runtime,
    wait_for,
    wait_for_pgid,
    wait_status,
    worker_row,
)

FAKE_ENV_CONFIG: dict[str, Any] = {
    **SHELL_CONFIG,
    "environment": {
        "env_type": "virtualenv",
        "create_command": ["sh", "-c", "mkdir -p {env_dir} && touch {env_dir}/made"],
    },
    "env_vars": {"MARK": "{env_dir}/made"},
}
FAKE_ENV = {"ATTUNE_WORKER_RUNTIMES": "shell,native,fake"}


async def test_registration_heartbeat_and_graceful_stop(platform: Platform, fake_clock: FakeClock) -> None:
    async with running_worker(platform, max_concurrent_tasks=4) as worker:
        await fake_clock.sleeping(1)  # the first beat is written; the loop waits for the next
        first = await worker_row(platform, worker.id)
        assert first.last_heartbeat is not None
        assert first.last_heartbeat == fake_clock.now()  # stamped by the platform clock
        fake_clock.advance(0.4)
        assert fake_clock.pending == 1  # not yet due (interval 0.5)
        fake_clock.advance(0.1)
        await fake_clock.sleeping(1)  # it beat again and went back to waiting
        later = await worker_row(platform, worker.id)
        await worker.shutdown()
        stopped = await worker_row(platform, worker.id)

    assert first.name == platform.settings.worker.name
    assert (first.worker_role, first.status) == ("action", "active")
    assert first.capabilities["runtimes"] == ["shell", "native"]
    assert first.capabilities["max_concurrent_executions"] == 4
    assert first.capabilities["worker_version"] == "0.1.0"
    assert first.last_heartbeat is not None and later.last_heartbeat is not None
    assert later.last_heartbeat - first.last_heartbeat == timedelta(seconds=0.5)
    assert stopped.status == "inactive"


async def test_restarted_worker_keeps_its_id(platform: Platform) -> None:
    async with running_worker(platform, name="steady-worker") as worker:
        first_id = worker.id
    async with running_worker(platform, name="steady-worker") as worker:
        assert worker.id == first_id
        assert (await worker_row(platform, worker.id)).status == "active"


async def test_capabilities_from_env_then_config_then_detection(platform: Platform) -> None:
    await add_runtime(platform, "core.shell", "Shell", SHELL_CONFIG)
    await add_runtime(platform, "core.native", "Native", {})
    await add_runtime(
        platform,
        "core.python",
        "Python",
        {"interpreter": {"binary": "python3"}},
        {
            "verification": {
                "commands": [{"binary": sys.executable, "args": ["--version"], "pattern": "Python 3"}]
            }
        },
    )
    await add_runtime(
        platform,
        "x.ghost",
        "Ghost",
        {"interpreter": {"binary": "ghost"}},
        {"verification": {"commands": [{"binary": "definitely-not-installed-xyz"}]}},
    )
    await add_runtime(platform, "x.unverified", "Unverified", {"interpreter": {"binary": "sh"}}, {})

    async with running_worker(platform, {"ATTUNE_WORKER_RUNTIMES": " Node.js , bash,"}) as worker:
        from_env = (await worker_row(platform, worker.id)).capabilities
    async with running_worker(
        platform, {}, capabilities={"runtimes": ["Python3", "bash"], "gpu": True}
    ) as worker:
        from_config = (await worker_row(platform, worker.id)).capabilities
    async with running_worker(platform, {}, capabilities=None) as worker:
        detected = (await worker_row(platform, worker.id)).capabilities

    assert from_env["runtimes"] == ["node", "shell"]
    assert from_config["runtimes"] == ["python", "shell"]
    assert from_config["gpu"] is True
    assert detected["runtimes"] == ["native", "python", "shell"]


async def test_stop_cancels_executions_still_running_after_the_shutdown_timeout(platform: Platform) -> None:
    shell = await shell_runtime(platform)
    action = await add_action(platform, "forever", "echo $$; sleep 30", shell)
    async with running_worker(platform, shutdown_timeout=0.5) as worker:
        execution_id = await dispatch(platform, action, worker)
        pgid = await wait_for_pgid(platform, execution_id)
        await asyncio.wait_for(worker.shutdown(), 10)
        row = await wait_status(platform, execution_id, within=1)

    assert row.status == "cancelled"
    assert not group_alive(pgid)


async def test_versions_are_verified_at_start_and_selected_by_constraint(platform: Platform) -> None:
    fake = await add_runtime(platform, "x.fake", "Fake", SHELL_CONFIG)

    def version_config(picked: str) -> dict[str, Any]:
        return {**SHELL_CONFIG, "env_vars": {"PICKED": picked}}

    async with platform.db.transaction() as session:
        for version, binary in (("1.0", "sh"), ("2.0", "definitely-not-installed-xyz")):
            session.add(
                models.RuntimeVersion(
                    runtime=fake.id,
                    runtime_ref=fake.ref,
                    version=version,
                    version_major=int(version[0]),
                    version_minor=0,
                    version_patch=0,
                    execution_config=version_config(version),
                    distributions={
                        "verification": {
                            "commands": [{"binary": binary, "args": ["-c", "echo fake"], "pattern": "fake"}]
                        }
                    },
                    available=True,
                )
            )
    action = await add_action(
        platform, "versioned", 'echo "picked=$PICKED"', fake, runtime_version_constraint=">=1"
    )

    async def versions() -> dict[str, models.RuntimeVersion]:
        async with platform.db.session() as session:
            rows = (await session.execute(sa.select(models.RuntimeVersion))).scalars().all()
        return {row.version: row for row in rows}

    async with running_worker(platform, FAKE_ENV) as worker:
        for _ in range(200):
            rows = await versions()
            if all(row.verified_at is not None for row in rows.values()):
                break
            await asyncio.sleep(0.05)
        execution_id = await dispatch(platform, action, worker)
        row = await wait_status(platform, execution_id)

    assert rows["1.0"].available is True
    assert rows["2.0"].available is False
    assert row.status == "completed", row.result
    assert row.result["stdout"] == "picked=1.0\n"


async def test_pack_environments_are_built_at_start_and_used_by_executions(platform: Platform) -> None:
    fake = await add_runtime(platform, "x.fake", "Fake", FAKE_ENV_CONFIG)
    action = await add_action(platform, "uses_env", 'test -f "$MARK" && echo "env ready"', fake)
    (platform.settings.packs_base_dir / PACK).mkdir(parents=True, exist_ok=True)
    made = platform.settings.envs_dir / PACK / "fake" / "made"

    async with running_worker(platform, FAKE_ENV) as worker:
        execution_id = await dispatch(platform, action, worker)
        row = await wait_status(platform, execution_id)
        await wait_for(made.is_file)

    assert row.status == "completed", row.result
    assert row.result["stdout"] == "env ready\n"


async def test_pack_registered_builds_the_new_packs_environment(platform: Platform) -> None:
    fake = await add_runtime(platform, "x.fake", "Fake", FAKE_ENV_CONFIG)
    made = platform.settings.envs_dir / PACK / "fake" / "made"
    async with running_worker(platform, FAKE_ENV):
        await asyncio.sleep(0.3)  # start-up setup finds no pack
        assert not made.exists()
        await add_action(platform, "later", "true", fake)
        (platform.settings.packs_base_dir / PACK).mkdir(parents=True, exist_ok=True)
        async with platform.db.transaction() as session:
            pack_id = (
                await session.execute(sa.select(models.Pack.id).where(models.Pack.ref == PACK))
            ).scalar_one()
            enqueue(
                session,
                MessageType.PACK_REGISTERED,
                {"pack_id": pack_id, "pack_ref": PACK, "version": "1.0.0", "runtime_names": ["fake"]},
                source_service="api",
            )
        await wait_for(made.is_file)


async def test_the_workers_route_judges_liveness_on_the_platform_clock(
    api: httpx.AsyncClient, platform: Platform, fake_clock: FakeClock
) -> None:
    platform.settings.worker.heartbeat_interval = 10
    row = await add_worker_row(platform, "w-route-live", fake_clock.now())
    fake_clock.advance(15)  # within 1.5 intervals, as the scheduler counts
    assert (await api.get(f"/api/v1/workers/{row.id}")).json()["data"]["live"] is True
    fake_clock.advance(0.1)
    assert (await api.get(f"/api/v1/workers/{row.id}")).json()["data"]["live"] is False
