"""Node.js runtime versions on a host whose only binary is ``node`` (issue #12 item 6).

The core pack's versions name ``node18``/``node20``/``node22``; most hosts have just ``node``. A
version whose verification passes through ``node --version`` is available and runs with ``node``.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from attune.db import models
from attune.platform import Platform
from attune.worker import interpreters
from tests.conftest import REPO
from tests.integration.test_worker import add_action, dispatch, pack_file, running_worker, wait_status

FAKE_NODE = """#!/bin/sh
if [ "$1" = "--version" ]; then echo "v20.11.1"; exit 0; fi
echo "fake node ran $(basename "$1")"
"""


@pytest.fixture
def node_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ``node`` (and no ``node20``) first on PATH that reports v20.11.1."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    node = bin_dir / "node"
    node.write_text(FAKE_NODE)
    node.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin")
    return node


async def add_core_nodejs(platform: Platform) -> models.Runtime:
    doc: dict[str, Any] = yaml.safe_load((REPO / "packs/core/runtimes/nodejs.yaml").read_text())
    async with platform.db.transaction() as session:
        row = models.Runtime(
            ref=doc["ref"],
            name=doc["name"],
            execution_config=doc["execution_config"],
            distributions=doc["distributions"],
            pack_ref="core",
        )
        session.add(row)
        await session.flush()
        for version in doc["versions"]:
            session.add(
                models.RuntimeVersion(
                    runtime=row.id,
                    runtime_ref=row.ref,
                    version=version["version"],
                    version_major=int(version["version"]),
                    execution_config=version["execution_config"],
                    distributions=version["distributions"],
                    is_default=version["is_default"],
                    available=False,
                )
            )
    return row


async def test_node_20_is_available_and_runs_with_the_node_binary(
    platform: Platform, node_on_path: Path
) -> None:
    nodejs = await add_core_nodejs(platform)
    pack_file(platform, "hello.js", "console.log('hi')\n")
    action = await add_action(
        platform, "hello", "hello.js", nodejs, is_adhoc=False, runtime_version_constraint="20"
    )

    async def versions() -> dict[str, models.RuntimeVersion]:
        async with platform.db.session() as session:
            rows = (await session.execute(sa.select(models.RuntimeVersion))).scalars().all()
        return {row.version: row for row in rows}

    async with running_worker(platform, {"ATTUNE_WORKER_RUNTIMES": "node"}) as worker:
        for _ in range(300):
            rows = await versions()
            if all(row.verified_at is not None for row in rows.values()):
                break
            await asyncio.sleep(0.05)
        execution_id = await dispatch(platform, action, worker)
        result = await wait_status(platform, execution_id)

    assert {v: r.available for v, r in rows.items()} == {"18": False, "20": True, "22": False}
    assert result.status == "completed", result.result
    assert result.result["stdout"] == "fake node ran hello.js\n"


async def test_resolve_keeps_an_interpreter_that_exists(node_on_path: Path) -> None:
    config = {"interpreter": {"binary": "node", "args": []}}
    assert await interpreters.resolve(config, {}) is config
