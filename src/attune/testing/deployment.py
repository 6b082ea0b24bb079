"""Real Attune processes for acceptance tests and benchmarks.

``embedded``: one ``attune server`` (SQLite + memory bus, or whatever URLs are given).
``scaled``: ``attune db upgrade`` then ``attune api``, ``attune executor``, ``attune worker`` and
``attune sensor`` as separate processes sharing PostgreSQL and RabbitMQ.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ATTUNE = str(Path(sys.executable).with_name("attune"))
REPO = Path(__file__).resolve().parents[3]
DEFAULT_LOGIN = {"login": "test@attune.local", "password": "TestPass123!"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Deployment:
    """A set of running Attune processes and an authenticated client for their API."""

    workdir: Path
    database_url: str
    bus_url: str
    mode: str = "embedded"
    heartbeat_interval: float = 2.0
    extra_env: dict[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    _logs: list[Any] = field(default_factory=list)
    token: str = ""

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith("ATTUNE")},
            "ATTUNE__SERVER__PORT": str(self.port),
            "ATTUNE__SERVER__HOST": "127.0.0.1",
            "ATTUNE__DATABASE__URL": self.database_url,
            "ATTUNE__MESSAGE_QUEUE__URL": self.bus_url,
            "ATTUNE__MESSAGE_QUEUE__PREFIX": f"acc{self.port}.",
            "ATTUNE__WORKER__HEARTBEAT_INTERVAL": str(self.heartbeat_interval),
            "ATTUNE__SENSOR__HEARTBEAT_INTERVAL": str(self.heartbeat_interval),
            "ATTUNE__EXECUTOR__NO_WORKER_TIMEOUT": "10",
            "ATTUNE__LOG__LEVEL": "info",
            "ATTUNE_API_URL": self.base,
            **self.extra_env,
        }

    def spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        """Start ``attune <args>``; its output goes to ``<workdir>/<name>.log``."""
        log = (self.workdir / f"{name}.log").open("ab")
        self._logs.append(log)
        proc = subprocess.Popen([ATTUNE, *args], cwd=self.workdir, env=self.env(), stdout=log, stderr=log)
        self.processes[name] = proc
        return proc

    def start(self) -> Deployment:
        if self.mode == "embedded":
            self.spawn("server", "server")
        else:
            subprocess.run(
                [ATTUNE, "db", "upgrade"], cwd=self.workdir, env=self.env(), check=True, capture_output=True
            )
            self.spawn("api", "api")
            self.wait_healthy()
            self.spawn("executor", "executor")
            self.spawn("worker", "worker", "--name", f"worker-a-{self.port}")
            self.spawn("sensor", "sensor")
        self.wait_healthy()
        login = httpx.post(f"{self.base}/auth/login", json=DEFAULT_LOGIN, timeout=10)
        login.raise_for_status()
        self.token = login.json()["data"]["access_token"]
        self.wait_for_services()
        return self

    def wait_for_services(self, timeout: float = 40) -> None:
        """Block until an action worker and the sensor service heartbeat (they start after the API)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            live = {w["worker_role"] for w in self.get("/api/v1/workers") if w["live"]}
            if {"action", "sensor"} <= live:
                return
            time.sleep(0.1)
        raise AssertionError(f"worker and sensor services did not come up\n{self.log_text()}")

    def log_text(self) -> str:
        return "\n".join(
            f"--- {path.name} ---\n{path.read_text(errors='replace')[-4000:]}"
            for path in self.workdir.glob("*.log")
        )

    def wait_healthy(self, timeout: float = 40) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self.processes.items():
                if proc.poll() is not None:
                    raise AssertionError(f"{name} exited with {proc.returncode}\n{self.log_text()}")
            try:
                if httpx.get(f"{self.base}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"API did not become healthy\n{self.log_text()}")

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, f"{self.base}{path}", headers=self.headers, timeout=30, **kwargs)

    def get(self, path: str, **kwargs: Any) -> Any:
        response = self.request("GET", path, **kwargs)
        assert response.status_code == 200, response.text
        return response.json()["data"]

    def post(self, path: str, body: Any = None, expect: int | tuple[int, ...] = (200, 201)) -> Any:
        response = self.request("POST", path, json=body)
        codes = (expect,) if isinstance(expect, int) else expect
        assert response.status_code in codes, f"{path}: {response.status_code} {response.text}"
        return response.json().get("data")

    def wait_execution(self, execution_id: int, statuses: set[str], timeout: float = 15) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        data: dict[str, Any] = {}
        while time.monotonic() < deadline:
            data = self.get(f"/api/v1/executions/{execution_id}")
            if data["status"] in statuses:
                return data
            time.sleep(0.05)
        raise AssertionError(f"execution {execution_id} stayed {data.get('status')}\n{self.log_text()}")

    def stop(self) -> None:
        for proc in self.processes.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in self.processes.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for log in self._logs:
            log.close()


def make_workdir(root: Path, packs: Path | None = None) -> Path:
    """A working directory with a copy of the shipped packs (the server may write to it)."""
    workdir = root / "work"
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(packs or REPO / "packs", workdir / "packs", symlinks=True, dirs_exist_ok=True)
    return workdir
