"""n8n as the peer in ``bench/compare.py``: its environment, server, workflows and W1–W4.

n8n is not part of the repository. Point the bench at an install with

* ``ATTUNE_BENCH_N8N_HOME``: a directory holding ``node_modules/n8n`` (``npm install n8n@2.40.7``);
  n8n's data lives in ``$ATTUNE_BENCH_N8N_HOME/data`` unless ``ATTUNE_BENCH_N8N_DATA`` says
  otherwise;
* ``ATTUNE_BENCH_N8N_NODE``: a Node.js >= 24 binary (default: ``node`` on the PATH).

Settings are those of the peer kit: SQLite, ``regular`` execution mode, default execution
saving, every node allowed (Execute Command), telemetry and the like off. The workflows:
W1/W2 ``Webhook (respond when the last node finishes) → Execute Command "echo hello"``;
W3 ``Webhook → NoOp1 … NoOp40`` (and one NoOp); W4a ``Webhook → Code (1,000 items) → NoOp``
(one node execution over the batch); W4b the same items through ``Loop Over Items`` (batch
size 1) ⇄ NoOp (1,000 NoOp node executions). Every n8n webhook answers after the run, so the
HTTP round trip is the run time.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import threading
import time
import urllib.error
from pathlib import Path
from typing import Any

from measure import Sampler, http, loadavg, median_run, proc_tree, summary_ms, tree_rss_mib

from attune.testing.deployment import free_port

W1, W3_40, W3_1, W4_BATCH, W4_LOOP = (
    "benchW1echo00001",
    "benchW3chain4001",
    "benchW3chain0101",
    "benchW4batch0001",
    "benchW4loop00001",
)
WORKFLOW_IDS = (W1, W3_1, W3_40, W4_BATCH, W4_LOOP)


class N8nUnavailable(RuntimeError):
    """The n8n install is not configured or not usable."""


# ------------------------------------------------------------------ install and environment
class N8nInstall:
    def __init__(self, home: Path, data: Path, node: str) -> None:
        self.home, self.data, self.node = home, data, node
        self.cli = home / "node_modules" / "n8n" / "bin" / "n8n"

    @classmethod
    def from_env(cls) -> N8nInstall:
        home = os.environ.get("ATTUNE_BENCH_N8N_HOME", "")
        if not home:
            raise N8nUnavailable(
                "set ATTUNE_BENCH_N8N_HOME to a directory holding node_modules/n8n "
                "(npm install n8n@2.40.7) and ATTUNE_BENCH_N8N_NODE to a Node.js >= 24 binary; "
                "see docs/performance.md"
            )
        node = os.environ.get("ATTUNE_BENCH_N8N_NODE") or shutil.which("node") or ""
        install = cls(Path(home), Path(os.environ.get("ATTUNE_BENCH_N8N_DATA") or Path(home) / "data"), node)
        if not install.cli.exists():
            raise N8nUnavailable(f"no n8n in {home}: {install.cli} is missing")
        if not node:
            raise N8nUnavailable("no Node.js: set ATTUNE_BENCH_N8N_NODE to a Node.js >= 24 binary")
        version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout
        if int(version.strip().lstrip("v").split(".")[0]) < 24:
            raise N8nUnavailable(f"n8n 2.x needs Node.js >= 24, {node} is {version.strip()}")
        return install

    @property
    def version(self) -> str:
        package = self.home / "node_modules" / "n8n" / "package.json"
        return str(json.loads(package.read_text())["version"])

    @property
    def database(self) -> Path:
        return self.data / ".n8n" / "database.sqlite"

    def env(self, port: int, log_level: str = "warn") -> dict[str, str]:
        base = f"http://127.0.0.1:{port}/"
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/tmp"),
            "N8N_USER_FOLDER": str(self.data),
            "DB_TYPE": "sqlite",
            "N8N_LISTEN_ADDRESS": "127.0.0.1",
            "N8N_HOST": "127.0.0.1",
            "N8N_PORT": str(port),
            "N8N_PROTOCOL": "http",
            "WEBHOOK_URL": base,
            "N8N_EDITOR_BASE_URL": base,
            "N8N_DIAGNOSTICS_ENABLED": "false",
            "N8N_VERSION_NOTIFICATIONS_ENABLED": "false",
            "N8N_PERSONALIZATION_ENABLED": "false",
            "N8N_TEMPLATES_ENABLED": "false",
            "N8N_HIRING_BANNER_ENABLED": "false",
            "N8N_COMMUNITY_PACKAGES_ENABLED": "false",
            "N8N_SECURE_COOKIE": "false",
            "N8N_LOG_LEVEL": log_level,
            # n8n 2.x excludes Execute Command by default
            "NODES_EXCLUDE": "[]",
        }

    def run_cli(self, *args: str) -> None:
        self.data.mkdir(parents=True, exist_ok=True)
        # n8n's CLI prints nothing below info
        done = subprocess.run(
            [self.node, str(self.cli), *args],
            env=self.env(free_port(), log_level="info"),
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise N8nUnavailable(f"n8n {' '.join(args)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")

    def setup(self) -> None:
        """Import and publish the benchmark workflows (n8n must not be running)."""
        with tempfile.TemporaryDirectory(prefix="n8n-bench-workflows-") as directory:
            for workflow in all_workflows():
                (Path(directory) / f"{workflow['name']}.json").write_text(json.dumps(workflow, indent=1))
            self.run_cli("import:workflow", "--separate", f"--input={directory}")
        for wid in WORKFLOW_IDS:
            self.run_cli("publish:workflow", f"--id={wid}")

    def check_workflows(self) -> None:
        missing = set(WORKFLOW_IDS)
        if self.database.exists():
            with sqlite3.connect(f"file:{self.database}?mode=ro", uri=True, timeout=30) as c:
                rows = c.execute("SELECT id FROM workflow_entity WHERE active = 1").fetchall()
            missing -= {r[0] for r in rows}
        if missing:
            raise N8nUnavailable(
                f"n8n has no active workflow(s) {sorted(missing)} in {self.data}: "
                "run `bench/compare.py --n8n-setup` once"
            )


# ------------------------------------------------------------------ workflows (for import)
def _webhook(path: str) -> dict[str, Any]:
    return {
        "parameters": {
            "httpMethod": "POST",
            "path": path,
            "responseMode": "lastNode",
            "responseData": "firstEntryJson",
            "options": {},
        },
        "name": "Webhook",
        "type": "n8n-nodes-base.webhook",
        "typeVersion": 2,
        "position": [0, 0],
        "webhookId": f"bench-{path}",
    }


def _noop(name: str, x: int) -> dict[str, Any]:
    return {
        "parameters": {},
        "name": name,
        "type": "n8n-nodes-base.noOp",
        "typeVersion": 1,
        "position": [x, 0],
    }


def _chain(names: list[str]) -> dict[str, Any]:
    return {a: {"main": [[{"node": b, "type": "main", "index": 0}]]} for a, b in itertools.pairwise(names)}


def _workflow(
    wid: str, name: str, nodes: list[dict[str, Any]], connections: dict[str, Any]
) -> dict[str, Any]:
    return {
        "id": wid,
        "name": name,
        "active": False,
        "nodes": nodes,
        "connections": connections,
        "settings": {"executionOrder": "v1"},
        "pinData": {},
    }


def all_workflows() -> list[dict[str, Any]]:
    exec_node = {
        "parameters": {"command": "echo hello"},
        "name": "Exec",
        "type": "n8n-nodes-base.executeCommand",
        "typeVersion": 1,
        "position": [200, 0],
    }
    out = [_workflow(W1, "w1-echo", [_webhook("w1"), exec_node], _chain(["Webhook", "Exec"]))]
    for n, wid in ((40, W3_40), (1, W3_1)):
        names = ["Webhook"] + [f"NoOp{i}" for i in range(1, n + 1)]
        nodes = [_webhook(f"w3-{n}")] + [_noop(nm, 200 * i) for i, nm in enumerate(names[1:], 1)]
        out.append(_workflow(wid, f"w3-chain{n}", nodes, _chain(names)))
    code = {
        "parameters": {"jsCode": "return Array.from({length: 1000}, (_, i) => ({json: {i}}));"},
        "name": "Items",
        "type": "n8n-nodes-base.code",
        "typeVersion": 2,
        "position": [200, 0],
    }
    out.append(
        _workflow(
            W4_BATCH,
            "w4-batch",
            [_webhook("w4a"), code, _noop("NoOp", 400)],
            _chain(["Webhook", "Items", "NoOp"]),
        )
    )
    loop = {
        "parameters": {"batchSize": 1, "options": {}},
        "name": "Loop",
        "type": "n8n-nodes-base.splitInBatches",
        "typeVersion": 3,
        "position": [400, 0],
    }
    connections = _chain(["Webhook", "Items", "Loop"])
    connections["Loop"] = {
        "main": [
            [{"node": "Done", "type": "main", "index": 0}],
            [{"node": "NoOp", "type": "main", "index": 0}],
        ]
    }
    connections["NoOp"] = {"main": [[{"node": "Loop", "type": "main", "index": 0}]]}
    nodes = [_webhook("w4b"), code, loop, _noop("NoOp", 600), _noop("Done", 800)]
    out.append(_workflow(W4_LOOP, "w4-loop", nodes, connections))
    return out


# ------------------------------------------------------------------ server
class N8nServer:
    """``n8n start`` in its own session on a free port; ``stop()`` ends that session."""

    def __init__(self, install: N8nInstall) -> None:
        self.install = install
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = install.home / "bench-server.log"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 240) -> N8nServer:
        self.install.check_workflows()
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [self.install.node, str(self.install.cli), "start"],
                env=self.install.env(self.port),
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise N8nUnavailable(
                    f"n8n exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}"
                )
            try:
                if http("GET", f"http://127.0.0.1:{self.port}/healthz/readiness", timeout=2)[0] == 200:
                    return self
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.5)
        self.stop()
        raise N8nUnavailable(f"n8n was not ready after {timeout:.0f} s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # task runners n8n started in its session, should any outlive it
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        self.proc = None


# ------------------------------------------------------------------ workloads
class N8nBench:
    def __init__(self, server: N8nServer) -> None:
        self.server = server
        self.base = f"http://127.0.0.1:{server.port}/webhook/"

    def post(self, path: str) -> tuple[float, dict[str, Any]]:
        t0 = time.perf_counter()
        _, raw = http("POST", self.base + path, {})
        return time.perf_counter() - t0, json.loads(raw) if raw else {}

    def _db(self) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{self.server.install.database}?mode=ro", uri=True, timeout=30)

    def executions(self, workflow_id: str, limit: int) -> list[tuple[str, str, float]]:
        """The latest executions of a workflow: (id, status, recorded duration s)."""
        with self._db() as c:
            return c.execute(
                "SELECT id, status, (julianday(stoppedAt)-julianday(startedAt))*86400.0 "
                "FROM execution_entity WHERE workflowId=? ORDER BY id DESC LIMIT ?",
                (workflow_id, limit),
            ).fetchall()

    def count_success(self, workflow_id: str) -> int:
        with self._db() as c:
            row = c.execute(
                "SELECT count(*) FROM execution_entity WHERE workflowId=? "
                "AND status='success' AND stoppedAt IS NOT NULL",
                (workflow_id,),
            ).fetchone()
        return int(row[0])

    def idle(self) -> dict[str, Any]:
        pids = [self.server.pid]
        now = loadavg()[0]
        return {
            "load_1m": [now, now],
            "idle_tree_rss_mib": tree_rss_mib(pids),
            "processes": len(proc_tree(pids)),
        }

    def w1(self, n: int = 50, warm: int = 5) -> dict[str, Any]:
        load = loadavg()[0]
        lat, recorded_at_answer = [], 0
        for i in range(warm + n):
            before = self.count_success(W1)
            dt, body = self.post("w1")
            if body.get("stdout") != "hello":
                raise AssertionError(f"W1 answered {body}")
            if i >= warm:
                lat.append(dt)
                # was the run already recorded as finished when the answer arrived?
                recorded_at_answer += self.count_success(W1) > before
        recorded = [r[2] for r in self.executions(W1, n)]
        return {
            "what": "POST /webhook/w1 round trip (answered after the run)",
            **summary_ms(lat),
            "recorded_success_already_at_answer": f"{recorded_at_answer}/{n}",
            "server_recorded": summary_ms(recorded),
            "load_1m": [load, loadavg()[0]],
        }

    def w2(self, clients: int = 8, duration: float = 30.0) -> dict[str, Any]:
        for _ in range(3):
            self.post("w1")
        load = loadavg()[0]
        done, errors, lat = [0], [0], []
        lock = threading.Lock()
        stop_at = time.perf_counter() + duration

        def client() -> None:
            while time.perf_counter() < stop_at:
                try:
                    dt, body = self.post("w1")
                    ok = body.get("stdout") == "hello"
                except Exception:
                    ok = False
                with lock:
                    if ok:
                        done[0] += 1
                        lat.append(dt)
                    else:
                        errors[0] += 1

        sampler = Sampler([self.server.pid], interval=0.2).begin()
        threads = [threading.Thread(target=client) for _ in range(clients)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        usage = sampler.finish()
        return {
            "what": f"{clients} clients × {duration:.0f} s POSTing /webhook/w1",
            "completed": done[0],
            "errors": errors[0],
            "wall_s": round(wall, 2),
            "runs_per_s": round(done[0] / wall, 2),
            "cpu_ms_per_run": round(usage["peer_cpu_s"] * 1000 / done[0], 1) if done[0] else None,
            **{k: v for k, v in usage.items() if k != "wall_s"},
            "latency": summary_ms(lat),
            "load_1m": [load, loadavg()[0]],
        }

    def timed_reps(self, path: str, workflow_id: str, reps: int = 3, sample: bool = False) -> dict[str, Any]:
        load = loadavg()[0]
        self.post(path)  # warm-up
        runs = []
        for _ in range(reps):
            sampler = Sampler([self.server.pid], interval=0.05).begin() if sample else None
            dt, _ = self.post(path)
            run: dict[str, Any] = {"wall_s": round(dt, 4)}
            if sampler:
                usage = sampler.finish()
                run.update(peak_tree_rss_mib=usage["peak_tree_rss_mib"], peer_cpu_s=usage["peer_cpu_s"])
            time.sleep(0.3)  # let the execution record settle
            _, status, recorded = self.executions(workflow_id, 1)[0]
            run.update(status=status, server_recorded_s=round(recorded, 4))
            runs.append(run)
        return {"reps": runs, "median": median_run(runs, "wall_s"), "load_1m": [load, loadavg()[0]]}

    def w3(self, reps: int = 3) -> dict[str, Any]:
        load = loadavg()[0]
        r40 = self.timed_reps("w3-40", W3_40, reps)
        r1 = self.timed_reps("w3-1", W3_1, reps)
        t40, t1 = r40["median"]["wall_s"], r1["median"]["wall_s"]
        return {
            "what": "Webhook → 40 chained NoOp nodes vs 1",
            "chain40": r40,
            "chain1": r1,
            "per_step_ms": round(t40 / 40 * 1000, 3),
            "marginal_per_step_ms": round((t40 - t1) / 39 * 1000, 3),
            "load_1m": [load, loadavg()[0]],
        }

    def w4(self, reps: int = 3) -> dict[str, Any]:
        load = loadavg()[0]
        return {
            "idle_tree_rss_mib_before": tree_rss_mib([self.server.pid]),
            "batch": self.timed_reps("w4a", W4_BATCH, reps, sample=True),
            "loop": self.timed_reps("w4b", W4_LOOP, reps, sample=True),
            "load_1m": [load, loadavg()[0]],
        }
