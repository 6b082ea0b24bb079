"""``attune pack install/upgrade/uninstall/test/search`` against the API in-process."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from attune.db import models
from attune.packs.register import register_system_packs
from attune.platform import Platform
from attune.settings import RegistryIndex
from tests.conftest import TEST_PASSWORD
from tests.integration.test_cli_commands import Bridge, Cli
from tests.pack_sources import commit_all, index_entry, init_repo, make_pack, sha256_of, write_index

PASSING = 'echo "Total Tests: 1"; echo "Passed: 1"; echo "Failed: 0"\n'


@pytest.fixture
async def cli(app: Any, tmp_path: Path, user: models.Identity) -> Cli:
    runner = Cli(Bridge(app, asyncio.get_running_loop()), tmp_path / "home")
    result = await runner("auth", "login", "-u", user.login, "--password", TEST_PASSWORD)
    assert result.exit_code == 0, result.output
    return runner


async def test_install_upgrade_test_search_and_uninstall(
    cli: Cli, platform: Platform, tmp_path: Path
) -> None:
    repo = init_repo(tmp_path / "repo")
    make_pack(repo, "demo", "1.0.0", test_script=PASSING)
    commit_all(repo, "one", tag="v1.0.0")
    make_pack(repo, "demo", "1.1.0", test_script=PASSING)
    commit_all(repo, "two", tag="v1.1.0")
    demo = repo / "demo"
    entry = index_entry(
        "demo", "1.1.0", [{"type": "git", "url": repo.as_uri(), "ref": "v1.1.0", "checksum": sha256_of(demo)}]
    )
    platform.settings.pack_registry.indices = [
        RegistryIndex(url=write_index(tmp_path / "index.json", [entry]))
    ]

    installed = await cli("pack", "install", repo.as_uri(), "--ref-spec", "v1.0.0")
    assert installed.exit_code == 0, installed.output
    assert f"Installing pack from: {repo.as_uri()} (git repository)" in installed.stdout
    assert "Pack 'demo' installed successfully" in installed.stdout
    assert "Tests: 1/1 passed" in installed.stdout
    assert "Cloning" in installed.stderr  # progress lines (no terminal here, so no bars)

    upgraded = await cli("--json", "pack", "upgrade", "demo", "--ref-spec", "v1.1.0")
    assert upgraded.exit_code == 0, upgraded.output
    assert '"previous_version": "1.0.0"' in upgraded.stdout

    tested = await cli("pack", "test", "demo", "--server")
    assert tested.exit_code == 0, tested.output
    assert "All tests passed: 1/1" in tested.stdout

    found = await cli("pack", "search", "DEMO", "--server")
    assert found.exit_code == 0 and "Found 1 pack(s)" in found.stdout

    gone = await cli("pack", "uninstall", "demo", "--yes")
    assert gone.exit_code == 0 and "Pack 'demo' uninstalled successfully" in gone.stdout
    assert await cli.json("pack", "list") == []

    # Registry refs install the index's version.
    from_registry = await cli("--json", "pack", "install", "demo")
    assert from_registry.exit_code == 0, from_registry.output
    assert [p["version"] for p in await cli.json("pack", "list")] == ["1.1.0"]


@pytest.mark.slow
async def test_broken_requirements_fail_fast_and_the_previous_version_stays(
    cli: Cli, platform: Platform, tmp_path: Path
) -> None:
    await register_system_packs(platform)  # core.python, as in a real deployment
    v1 = make_pack(tmp_path / "v1", "pyapp", "1.0.0")
    first = await cli("pack", "install", str(v1))
    assert first.exit_code == 0, first.output

    v2 = make_pack(tmp_path / "v2", "pyapp", "2.0.0")
    (v2 / "actions" / "run.yaml").write_text("name: run\nrunner_type: python\nentry_point: run.py\n")
    (v2 / "actions" / "run.py").write_text("print('hi')\n")
    (v2 / "requirements.txt").write_text("nonexistent-package-xyz-attune==1.0\n")
    started = time.monotonic()
    broken = await cli("pack", "install", str(v2))
    assert time.monotonic() - started < 60
    assert broken.exit_code == 1
    assert "API error (400" in broken.stderr
    assert "No matching distribution found for nonexistent-package-xyz-attune==1.0" in broken.stderr

    listed = await cli("pack", "list")
    assert listed.exit_code == 0
    row = next(line for line in listed.stdout.splitlines() if "pyapp" in line)
    assert "1.0.0" in row and "2.0.0" not in row
