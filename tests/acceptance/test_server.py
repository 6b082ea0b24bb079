"""The real ``attune server`` process, as ``make run`` starts it."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO, backend_bus_url

ATTUNE = str(Path(sys.executable).with_name("attune"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(port: int, database_url: str, **extra: str) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("ATTUNE")},
        "ATTUNE__SERVER__PORT": str(port),
        "ATTUNE__DATABASE__URL": database_url,
        "ATTUNE__MESSAGE_QUEUE__URL": backend_bus_url(),
        "ATTUNE__MESSAGE_QUEUE__PREFIX": f"acc{port}.",
        **extra,
    }


@contextlib.contextmanager
def running_server(workdir: Path, database_url: str) -> Iterator[str]:
    """Start ``attune server`` in ``workdir``; yield its base URL once healthy; stop it with SIGINT."""
    port = free_port()
    log_path = workdir / f"server-{port}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [ATTUNE, "server"], cwd=workdir, env=server_env(port, database_url), stdout=log, stderr=log
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                if proc.poll() is not None:
                    raise AssertionError(f"server exited with {proc.returncode}: {log_path.read_text()}")
                try:
                    if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(f"server did not become healthy: {log_path.read_text()}")
                time.sleep(0.2)
            yield base
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def prepare_workdir(tmp_path: Path, empty_database_url: str) -> tuple[Path, str]:
    workdir = tmp_path / "work"
    shutil.copytree(REPO / "packs", workdir / "packs", symlinks=True)
    return workdir, empty_database_url.replace(str(tmp_path / "data"), str(workdir / "data"))


@pytest.fixture
def server(tmp_path: Path, empty_database_url: str) -> Iterator[str]:
    workdir, url = prepare_workdir(tmp_path, empty_database_url)
    with running_server(workdir, url) as base:
        yield base


def test_make_run_serves_core_pack_and_default_user(server: str) -> None:
    assert httpx.get(f"{server}/health").json() == {"status": "ok"}
    login = httpx.post(
        f"{server}/auth/login", json={"login": "test@attune.local", "password": "TestPass123!"}
    )
    assert login.status_code == 200
    token = login.json()["data"]["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    core = httpx.get(f"{server}/api/v1/packs/core", headers=headers)
    assert core.status_code == 200
    assert core.json()["data"]["ref"] == "core"
    assert core.json()["data"]["is_standard"] is True
    actions = httpx.get(f"{server}/api/v1/actions", headers=headers).json()["data"]
    refs = {a["ref"] for a in actions}
    assert {"core.echo", "core.noop", "core.sleep", "core.http_request"} <= refs


def listening_addresses(port: int) -> set[str]:
    """The local addresses a socket listens on for ``port`` (Linux ``/proc/net/tcp{,6}``)."""
    found: set[str] = set()
    for table, width in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 16)):
        with contextlib.suppress(OSError), open(table) as handle:
            for line in list(handle)[1:]:
                fields = line.split()
                address, hex_port = fields[1].split(":")
                if fields[3] != "0A" or int(hex_port, 16) != port:
                    continue
                raw = bytes.fromhex(address)
                # Each 32-bit word is stored in host (little-endian) order.
                words = b"".join(raw[i : i + 4][::-1] for i in range(0, width, 4))
                found.add(str(ipaddress.ip_address(words)))
    return found


def test_make_run_listens_on_loopback_only(server: str) -> None:
    """`make run` listened on 0.0.0.0 with the development user's published password."""
    assert listening_addresses(int(server.rsplit(":", 1)[1])) == {"127.0.0.1"}


def test_server_refuses_the_network_while_the_default_password_stands(
    tmp_path: Path, empty_database_url: str
) -> None:
    workdir, url = prepare_workdir(tmp_path, empty_database_url)
    port = free_port()
    result = subprocess.run(
        [ATTUNE, "server", "--host", "0.0.0.0"],
        cwd=workdir,
        env=server_env(port, url),
        capture_output=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr.decode()
    stderr = result.stderr.decode()
    assert "Refusing to listen on 0.0.0.0" in stderr
    assert "test@attune.local" in stderr and "change-password" in stderr
    assert listening_addresses(port) == set()


def test_make_run_prints_the_url_and_the_development_login(server: str, tmp_path: Path) -> None:
    port = server.rsplit(":", 1)[1]
    log_file = next((tmp_path / "work").glob(f"server-{port}.log"))
    deadline = time.monotonic() + 10
    while "development login" not in log_file.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    text = log_file.read_text()
    assert f"Attune is ready at http://127.0.0.1:{port}" in text
    assert "development login: test@attune.local / TestPass123!" in text


def test_server_restart_keeps_data_and_is_idempotent(tmp_path: Path, empty_database_url: str) -> None:
    """Two starts on the same data directory: migrations and bootstrap run again harmlessly."""
    workdir, url = prepare_workdir(tmp_path, empty_database_url)
    for _ in range(2):
        with running_server(workdir, url) as base:
            login = httpx.post(
                f"{base}/auth/login", json={"login": "test@attune.local", "password": "TestPass123!"}
            )
            assert login.status_code == 200
    # The generated development secrets were stored once and reused across restarts.
    assert (workdir / "data" / "secrets.json").is_file()


def test_api_alone_refuses_the_memory_bus(tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ATTUNE")},
        "ATTUNE__DATA_DIR": str(tmp_path),
    }
    result = subprocess.run([ATTUNE, "api"], env=env, cwd=tmp_path, capture_output=True, timeout=30)
    assert result.returncode != 0
    assert b"memory://" in result.stderr


def test_production_refuses_to_start_without_secrets(tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ATTUNE")},
        "ATTUNE__ENVIRONMENT": "production",
        "ATTUNE__DATA_DIR": str(tmp_path),
    }
    result = subprocess.run([ATTUNE, "server"], env=env, cwd=tmp_path, capture_output=True, timeout=30)
    assert result.returncode == 2
    assert b"security.jwt_secret" in result.stderr
