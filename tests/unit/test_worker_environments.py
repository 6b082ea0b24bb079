"""Per-pack environments (docs/packs.md): real virtualenvs and node_modules, no network."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from attune.worker.commands import build_command
from attune.worker.environments import MARKER_NAME, ensure_environment, env_dir_for, needs_environment

IN_CI = os.environ.get("CI", "").lower() == "true"
PROBE = "attune_envprobe"

# The core python config with two test-only twists: the base interpreter is the one running the tests
# (deterministic, unlike whatever `python3` is on PATH) and pip never touches an index.
CORE_LIKE_PYTHON: dict[str, Any] = {
    "interpreter": {"binary": sys.executable, "args": ["-u"], "file_extension": ".py"},
    "environment": {
        "env_type": "virtualenv",
        "dir_name": ".venv",
        "create_command": [sys.executable, "-m", "venv", "--copies", "{env_dir}"],
        "interpreter_path": "{env_dir}/bin/python3",
    },
    "dependencies": {
        "manifest_file": "requirements.txt",
        "install_command": [
            "{interpreter}",
            "-m",
            "pip",
            "install",
            "--no-index",
            "-q",
            "-r",
            "{manifest_path}",
        ],
    },
}

# Same shape, but a pip-less venv filled by the test's own pip (`pip --python`): a second faster.
FAST_PYTHON: dict[str, Any] = {
    **CORE_LIKE_PYTHON,
    "environment": {
        **CORE_LIKE_PYTHON["environment"],
        "create_command": [sys.executable, "-m", "venv", "--without-pip", "--copies", "{env_dir}"],
    },
    "dependencies": {
        "manifest_file": "requirements.txt",
        "install_command": [
            sys.executable,
            *(
                "-m",
                "pip",
                "--python",
                "{interpreter}",
                "install",
                "--no-index",
                "-q",
                "-r",
                "{manifest_path}",
            ),
        ],
    },
}


def build_wheel(directory: Path, version: str) -> Path:
    """A minimal pure-Python wheel whose module exposes ``VALUE = "v<version>"``."""
    dist_info = f"{PROBE}-{version}.dist-info"
    files = {
        f"{PROBE}/__init__.py": f'VALUE = "v{version}"\n',
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {PROBE}\nVersion: {version}\n",
        f"{dist_info}/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: attune-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = []
    for name, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(text.encode())}")
    record.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = "\n".join(record) + "\n"
    directory.mkdir(parents=True, exist_ok=True)
    wheel = directory / f"{PROBE}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return wheel


@pytest.fixture
def pack_dir(tmp_path: Path) -> Path:
    pack = tmp_path / "packs" / "demo"
    (pack / "actions").mkdir(parents=True)
    return pack


@pytest.fixture
def envs_dir(tmp_path: Path) -> Path:
    return tmp_path / "runtime_envs"


def require(pack_dir: Path, wheel: Path) -> Path:
    manifest = pack_dir / "requirements.txt"
    manifest.write_text(f"{wheel}\n")
    return manifest


def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def stdout_of(argv: list[str], cwd: Path | None) -> str:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


@contextlib.contextmanager
def hold_lock(path: Path) -> Iterator[None]:
    """Hold ``path`` the way another worker process would."""
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def probe_value(env_dir: Path) -> str:
    result = subprocess.run(
        [str(env_dir / "bin" / "python3"), "-c", f"import {PROBE}; print({PROBE}.VALUE)"],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def test_env_dir_layout(tmp_path: Path) -> None:
    assert env_dir_for(tmp_path, "demo", "Python", None) == tmp_path / "demo" / "python"
    assert env_dir_for(tmp_path, "demo", "Python", "3.12") == tmp_path / "demo" / "python-3.12"
    assert env_dir_for(tmp_path, "demo", "Node.js", "20") == tmp_path / "demo" / "node.js-20"
    assert env_dir_for(tmp_path, "demo", "Shell", "") == tmp_path / "demo" / "shell"


def test_needs_environment(pack_dir: Path) -> None:
    assert needs_environment(FAST_PYTHON, pack_dir)
    shell = {"interpreter": {"binary": "/bin/bash"}}
    assert not needs_environment(shell, pack_dir)
    assert not needs_environment({**FAST_PYTHON, "environment": {"env_type": "none"}}, pack_dir)
    manifest_only = {
        **shell,
        "dependencies": {"manifest_file": "requirements.txt", "install_command": ["true"]},
    }
    assert not needs_environment(manifest_only, pack_dir)
    (pack_dir / "requirements.txt").write_text("\n")
    assert needs_environment(manifest_only, pack_dir)


async def test_virtualenv_gets_the_pack_requirements_once(
    pack_dir: Path, envs_dir: Path, tmp_path: Path
) -> None:
    manifest = require(pack_dir, build_wheel(tmp_path / "wheels", "1.0"))
    env_dir = env_dir_for(envs_dir, "demo", "Python", "3.11")

    first = await ensure_environment(pack_dir, env_dir, CORE_LIKE_PYTHON)
    assert first.error is None, first.log
    assert (first.created, first.deps_installed, first.repaired, first.skipped) == (True, True, False, False)
    assert probe_value(env_dir) == "v1.0"
    assert (env_dir / MARKER_NAME).read_text() == hashlib.sha256(manifest.read_bytes()).hexdigest()
    # The pack directory stays untouched: everything lives under the env dir.
    assert listing(pack_dir) == ["actions", "requirements.txt"]
    # The action then runs with the environment's interpreter.
    (pack_dir / "actions" / "show.py").write_text(f"import {PROBE}; print({PROBE}.VALUE)\n")
    command = build_command(
        config=CORE_LIKE_PYTHON,
        pack_dir=pack_dir,
        env_dir=env_dir,
        entrypoint="show.py",
        inline_allowed=False,
    )
    assert command.argv[0] == str(env_dir / "bin" / "python3")
    assert stdout_of(command.argv, command.cwd) == "v1.0"

    second = await ensure_environment(pack_dir, env_dir, CORE_LIKE_PYTHON)
    assert second.error is None
    assert (second.created, second.deps_installed, second.repaired) == (False, False, False)
    assert second.log == ""  # nothing ran


@pytest.mark.parametrize("damage", ["delete", "dangling-symlink"])
async def test_broken_virtualenv_is_rebuilt(
    pack_dir: Path, envs_dir: Path, tmp_path: Path, damage: str
) -> None:
    require(pack_dir, build_wheel(tmp_path / "wheels", "1.0"))
    env_dir = env_dir_for(envs_dir, "demo", "python", None)
    assert (await ensure_environment(pack_dir, env_dir, FAST_PYTHON)).error is None

    interpreter = env_dir / "bin" / "python3"
    interpreter.unlink()
    if damage == "dangling-symlink":
        interpreter.symlink_to(tmp_path / "removed-python")

    report = await ensure_environment(pack_dir, env_dir, FAST_PYTHON)
    assert report.error is None, report.log
    assert (report.repaired, report.created, report.deps_installed) == (True, True, True)
    assert probe_value(env_dir) == "v1.0"


async def test_changed_manifest_reinstalls(pack_dir: Path, envs_dir: Path, tmp_path: Path) -> None:
    require(pack_dir, build_wheel(tmp_path / "wheels", "1.0"))
    env_dir = env_dir_for(envs_dir, "demo", "python", None)
    assert (await ensure_environment(pack_dir, env_dir, FAST_PYTHON)).error is None

    manifest = require(pack_dir, build_wheel(tmp_path / "wheels", "2.0"))
    report = await ensure_environment(pack_dir, env_dir, FAST_PYTHON)
    assert report.error is None, report.log
    assert (report.created, report.deps_installed) == (False, True)
    assert probe_value(env_dir) == "v2.0"
    assert (env_dir / MARKER_NAME).read_text() == hashlib.sha256(manifest.read_bytes()).hexdigest()


async def test_failed_install_is_reported_and_retried(pack_dir: Path, envs_dir: Path, tmp_path: Path) -> None:
    (pack_dir / "requirements.txt").write_text(f"{tmp_path / 'no-such-wheel-1.0-py3-none-any.whl'}\n")
    env_dir = env_dir_for(envs_dir, "demo", "python", None)
    report = await ensure_environment(pack_dir, env_dir, FAST_PYTHON)
    assert report.created and not report.deps_installed
    assert report.error is not None and "Failed to install dependencies" in report.error
    assert not (env_dir / MARKER_NAME).exists()

    require(pack_dir, build_wheel(tmp_path / "wheels", "1.0"))
    retry = await ensure_environment(pack_dir, env_dir, FAST_PYTHON)
    assert retry.error is None and retry.deps_installed and not retry.created


async def test_failed_creation_is_reported_and_cleaned_up(pack_dir: Path, envs_dir: Path) -> None:
    config = {
        "interpreter": {"binary": "x"},
        "environment": {
            "env_type": "virtualenv",
            "create_command": ["sh", "-c", "mkdir -p {env_dir} && echo 'no venv module here' >&2 && exit 4"],
        },
    }
    env_dir = env_dir_for(envs_dir, "demo", "x", None)
    report = await ensure_environment(pack_dir, env_dir, config)
    assert report.error is not None
    assert "no venv module here" in report.error
    assert not report.created
    assert not env_dir.exists()  # so the next attempt starts from scratch


async def test_problems_never_raise(pack_dir: Path, envs_dir: Path, tmp_path: Path) -> None:
    missing_binary = {
        "environment": {"env_type": "virtualenv", "create_command": ["/nonexistent/python", "-m", "venv"]}
    }
    report = await ensure_environment(pack_dir, envs_dir / "demo" / "python", missing_binary)
    assert report.error is not None and "/nonexistent/python" in report.error

    report = await ensure_environment(tmp_path / "no-pack", envs_dir / "nope" / "python", FAST_PYTHON)
    assert report.error is not None and "does not exist" in report.error


async def test_runtimes_without_an_environment_are_skipped(pack_dir: Path, envs_dir: Path) -> None:
    (pack_dir / "requirements.txt").write_text("anything\n")
    for config in (
        {"interpreter": {"binary": "/bin/bash"}},
        {**FAST_PYTHON, "environment": {"env_type": "none"}},
    ):
        report = await ensure_environment(pack_dir, envs_dir / "demo" / "shell", config)
        assert report.skipped and report.error is None and not report.created
    assert listing(envs_dir) == []


def counting_config(counter: Path) -> dict[str, Any]:
    return {
        "interpreter": {"binary": "sh"},
        "environment": {
            "env_type": "virtualenv",
            "create_command": ["sh", "-c", f"echo run >> {counter}; sleep 0.3; mkdir -p {{env_dir}}"],
        },
    }


async def test_concurrent_calls_build_once(pack_dir: Path, envs_dir: Path, tmp_path: Path) -> None:
    counter = tmp_path / "create-count"
    env_dir = envs_dir / "demo" / "custom"
    reports = await asyncio.gather(
        *(ensure_environment(pack_dir, env_dir, counting_config(counter)) for _ in range(3))
    )
    assert counter.read_text().split() == ["run"]
    assert sorted(r.created for r in reports) == [False, False, True]
    assert all(r.error is None for r in reports)


async def test_another_process_holding_the_lock_file_is_waited_for(
    pack_dir: Path, envs_dir: Path, tmp_path: Path
) -> None:
    counter = tmp_path / "create-count"
    env_dir = envs_dir / "demo" / "custom"
    env_dir.parent.mkdir(parents=True)
    with hold_lock(Path(f"{env_dir}.lock")):
        task = asyncio.create_task(ensure_environment(pack_dir, env_dir, counting_config(counter)))
        await asyncio.sleep(0.4)
        assert not task.done()
        assert listing(tmp_path) == ["packs", "runtime_envs"]  # the create command has not run
    report = await asyncio.wait_for(task, 10)
    assert report.created and report.error is None


async def test_lock_wait_is_bounded_by_the_timeout(pack_dir: Path, envs_dir: Path, tmp_path: Path) -> None:
    env_dir = envs_dir / "demo" / "custom"
    env_dir.parent.mkdir(parents=True)
    with hold_lock(Path(f"{env_dir}.lock")):
        report = await ensure_environment(pack_dir, env_dir, counting_config(tmp_path / "c"), timeout=0.3)
    assert report.error is not None and "lock" in report.error
    assert not report.created


# --- node_modules ---------------------------------------------------------------------------------


def require_node() -> None:
    if shutil.which("node") and shutil.which("npm"):
        return
    if IN_CI:
        pytest.fail("node and npm are required under CI")
    pytest.skip("node/npm not installed")


def node_config() -> dict[str, Any]:
    """The core Node.js config, with npm kept offline (the dependency is a local directory)."""
    return {
        "interpreter": {"binary": "node", "args": [], "file_extension": ".js"},
        "environment": {
            "env_type": "node_modules",
            "dir_name": "node_modules",
            "create_command": [
                "sh",
                "-c",
                "mkdir -p {env_dir} && cp {manifest_path} {env_dir}/ 2>/dev/null || true",
            ],
            "interpreter_path": None,
        },
        "dependencies": {
            "manifest_file": "package.json",
            "install_command": [
                *("npm", "install", "--prefix", "{env_dir}"),
                *("--offline", "--no-audit", "--no-fund", "--no-update-notifier"),
            ],
        },
        "env_vars": {"NODE_PATH": "{env_dir}/node_modules"},
    }


def local_node_package(directory: Path, name: str, value: str) -> Path:
    directory.mkdir(parents=True)
    (directory / "package.json").write_text(
        json.dumps({"name": name, "version": "1.0.0", "main": "index.js"})
    )
    (directory / "index.js").write_text(f"module.exports = {json.dumps(value)};\n")
    return directory


def write_package_json(pack_dir: Path, dependencies: dict[str, Path]) -> None:
    document = {
        "name": "demo",
        "version": "1.0.0",
        "dependencies": {k: f"file:{v}" for k, v in dependencies.items()},
    }
    (pack_dir / "package.json").write_text(json.dumps(document))


def run_node_action(pack_dir: Path, env_dir: Path, config: dict[str, Any]) -> str:
    command = build_command(
        config=config, pack_dir=pack_dir, env_dir=env_dir, entrypoint="main.js", inline_allowed=False
    )
    env = {**os.environ, **command.env}
    return subprocess.run(
        command.argv, cwd=command.cwd, env=env, capture_output=True, text=True, check=True
    ).stdout


async def test_node_modules_from_a_local_package(pack_dir: Path, envs_dir: Path, tmp_path: Path) -> None:
    require_node()
    config = node_config()
    greeter = local_node_package(tmp_path / "deps" / "greeter", "greeter", "hello from greeter")
    write_package_json(pack_dir, {"greeter": greeter})
    (pack_dir / "actions" / "main.js").write_text(
        "const parts = [require('greeter')];\n"
        "try { parts.push(require('second')); } catch (e) { parts.push('no second'); }\n"
        "console.log(parts.join(' | '));\n"
    )
    env_dir = env_dir_for(envs_dir, "demo", "Node.js", "20")

    report = await ensure_environment(pack_dir, env_dir, config)
    assert report.error is None, report.log
    assert report.created and report.deps_installed
    assert (env_dir / "node_modules" / "greeter").exists()
    assert not (pack_dir / "node_modules").exists()
    assert run_node_action(pack_dir, env_dir, config).strip() == "hello from greeter | no second"

    again = await ensure_environment(pack_dir, env_dir, config)
    assert (again.created, again.deps_installed, again.error) == (False, False, None)

    # A changed package.json is installed (npm reads the copy inside env_dir, which is refreshed).
    second = local_node_package(tmp_path / "deps" / "second", "second", "second too")
    write_package_json(pack_dir, {"greeter": greeter, "second": second})
    changed = await ensure_environment(pack_dir, env_dir, config)
    assert changed.error is None, changed.log
    assert (changed.created, changed.deps_installed) == (False, True)
    assert run_node_action(pack_dir, env_dir, config).strip() == "hello from greeter | second too"
