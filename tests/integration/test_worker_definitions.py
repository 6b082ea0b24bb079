"""A worker keeps action definitions between runs, but never runs a stale one (docs/performance.md).

Each test runs the same action twice or more on one worker, changing its definition (through
the API or as a pack registration would) in between.
"""

from __future__ import annotations

from typing import Any

import httpx
import sqlalchemy as sa

from attune.db import models
from attune.db.repos import runtimes as runtimes_repo
from attune.db.types import utcnow
from attune.platform import Platform
from tests.integration.test_worker import (
    SHELL_CONFIG,
    RunningWorker,
    add_action,
    add_runtime,
    dispatch,
    running_worker,
    shell_runtime,
    wait_status,
)


async def run(platform: Platform, action: models.Action, worker: RunningWorker) -> str:
    row = await wait_status(platform, await dispatch(platform, action, worker))
    assert row.status == "completed", row.result
    return str(row.result["stdout"])


async def test_an_action_updated_through_the_api_runs_its_new_definition(
    platform: Platform, api: httpx.AsyncClient
) -> None:
    shell = await shell_runtime(platform)
    action = await add_action(platform, "say", "echo first", shell)
    async with running_worker(platform) as worker:
        assert await run(platform, action, worker) == "first\n"
        assert await run(platform, action, worker) == "first\n"
        response = await api.put(f"/api/v1/actions/{action.ref}", json={"entrypoint": "echo second"})
        assert response.status_code == 200, response.text
        assert await run(platform, action, worker) == "second\n"


def picking(picked: str) -> dict[str, Any]:
    return {**SHELL_CONFIG, "env_vars": {"PICKED": picked}}


async def test_runtime_and_version_changes_reach_the_next_run(platform: Platform) -> None:
    runtime = await add_runtime(platform, "x.picky", "Picky", picking("runtime"))
    action = await add_action(platform, "picked", 'echo "$PICKED"', runtime)
    async with running_worker(platform) as worker:
        assert await run(platform, action, worker) == "runtime\n"

        async with platform.db.transaction() as session:
            row = await session.get(models.Runtime, runtime.id)
            assert row is not None
            row.execution_config = picking("runtime-updated")
        assert await run(platform, action, worker) == "runtime-updated\n"

        async with platform.db.transaction() as session:
            version = models.RuntimeVersion(
                runtime=runtime.id,
                runtime_ref=runtime.ref,
                version="1.0",
                version_major=1,
                version_minor=0,
                version_patch=0,
                execution_config=picking("1.0"),
                distributions={"verification": {"always_available": True}},
                available=True,
            )
            session.add(version)
        assert await run(platform, action, worker) == "1.0\n"

        # A host that verifies the version again and finds it missing (docs/packs.md).
        async with platform.db.transaction() as session:
            await runtimes_repo.set_version_availability(session, version.id, False, now=utcnow())
        assert await run(platform, action, worker) == "runtime-updated\n"

        async with platform.db.transaction() as session:
            await session.execute(
                sa.delete(models.RuntimeVersion).where(models.RuntimeVersion.id == version.id)
            )
            session.add(
                models.RuntimeVersion(
                    runtime=runtime.id,
                    runtime_ref=runtime.ref,
                    version="2.0",
                    version_major=2,
                    version_minor=0,
                    version_patch=0,
                    execution_config=picking("2.0"),
                    distributions={"verification": {"always_available": True}},
                    available=True,
                )
            )
        assert await run(platform, action, worker) == "2.0\n"
