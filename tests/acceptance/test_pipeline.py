"""The automation pipeline end to end, against real processes.

The SQLite pass runs the embedded server (one process, memory bus); the PostgreSQL pass runs the
scaled deployment (api, executor, worker and sensor as separate processes on RabbitMQ).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
import re
import time
import uuid
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from attune.testing.deployment import Deployment
from tests.acceptance.harness import MODE, running_deployment


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with running_deployment(tmp_path_factory.mktemp("pipeline")) as deployment:
        deployment.post("/api/v1/packs", {"ref": "acc", "label": "Acceptance", "version": "1.0.0"})
        yield deployment


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def _rule(d: Deployment, trigger: str, action: str, **extra: Any) -> str:
    ref = f"acc.{_unique('rule')}"
    d.post(
        "/api/v1/rules",
        {"ref": ref, "pack_ref": "acc", "label": ref, "trigger_ref": trigger, "action_ref": action, **extra},
    )
    return ref


def _executions_of_rule(d: Deployment, rule_ref: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = d.get("/api/v1/executions", params={"rule_ref": rule_ref, "per_page": 100})
    return rows


def _fired_at(d: Deployment, execution: dict[str, Any]) -> float:
    """When the timer fired the event behind ``execution`` (its enforcement's payload), in seconds."""
    enforcement: dict[str, Any] = d.get(f"/api/v1/enforcements/{execution['enforcement']}")
    return datetime.fromisoformat(enforcement["payload"]["fired_at"].replace("Z", "+00:00")).timestamp()


def _action(d: Deployment, entrypoint: str, **extra: Any) -> str:
    ref = f"acc.{_unique('act')}"
    d.post(
        "/api/v1/actions",
        {
            "ref": ref,
            "pack_ref": "acc",
            "label": ref,
            "runtime_ref": "core.shell",
            "entrypoint": entrypoint,
            **extra,
        },
    )
    return ref


def _run(d: Deployment, action_ref: str, parameters: dict[str, Any] | None = None) -> int:
    data = d.post("/api/v1/executions/execute", {"action_ref": action_ref, "parameters": parameters or {}})
    return int(data["id"])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is gone for our purposes.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def _wait_file(path: Path, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.05)
    raise AssertionError(f"{path} never appeared")


def test_interval_timer_fires_core_echo_every_second(deployment: Deployment) -> None:
    started = time.monotonic()
    rule = _rule(
        deployment,
        "core.intervaltimer",
        "core.echo",
        trigger_params={"unit": "seconds", "interval": 1},
        action_params={"message": "tick"},
    )
    try:
        # Every second, not every few: the three runs' events are about a second apart. The wait is
        # generous (a loaded CI machine delays the runs), the spacing is what is judged.
        deadline = started + 10
        completed: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            completed = [e for e in _executions_of_rule(deployment, rule) if e["status"] == "completed"]
            if len(completed) >= 3:
                break
            time.sleep(0.1)
        assert len(completed) >= 3, f"{len(completed)} completed after 10 s\n{deployment.log_text()}"
        fired = sorted(_fired_at(deployment, e) for e in _executions_of_rule(deployment, rule))[:3]
        gaps = [later - earlier for earlier, later in itertools.pairwise(fired)]
        assert all(0.5 <= gap <= 1.5 for gap in gaps), f"timer events {fired} are not a second apart"
    finally:
        deployment.post(f"/api/v1/rules/{rule}/disable")


def test_cron_rule_every_second_fires(deployment: Deployment) -> None:
    rule = _rule(
        deployment,
        "core.crontimer",
        "core.noop",
        trigger_params={"expression": "* * * * * *"},
    )
    try:
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline and not any(
            e["status"] == "completed" for e in _executions_of_rule(deployment, rule)
        ):
            time.sleep(0.1)
        assert any(e["status"] == "completed" for e in _executions_of_rule(deployment, rule))
    finally:
        deployment.post(f"/api/v1/rules/{rule}/disable")


def test_datetime_timer_fires_exactly_once(deployment: Deployment) -> None:
    fire_at = (datetime.now(UTC) + timedelta(seconds=2)).isoformat().replace("+00:00", "Z")
    rule = _rule(deployment, "core.datetimetimer", "core.noop", trigger_params={"fire_at": fire_at})
    time.sleep(1.0)
    assert _executions_of_rule(deployment, rule) == [], "fired before its time"
    time.sleep(3.5)
    executions = _executions_of_rule(deployment, rule)
    assert len(executions) == 1, executions


def test_webhook_rule_with_conditions_templates_parameters(deployment: Deployment) -> None:
    trigger = f"acc.{_unique('hook')}"
    deployment.post("/api/v1/triggers", {"ref": trigger, "pack_ref": "acc", "label": "Hook"})
    key = deployment.post(f"/api/v1/triggers/{trigger}/webhooks/enable")["webhook_key"]
    rule = _rule(
        deployment,
        trigger,
        "core.echo",
        conditions=[{"field": "level", "operator": "equals", "value": "high"}],
        action_params={"message": "deploy of {{ event.payload.service }}"},
    )
    for payload in ({"level": "high", "service": "billing"}, {"level": "low", "service": "search"}):
        response = httpx.post(
            f"{deployment.base}/api/v1/webhooks/{key}", json={"payload": payload}, timeout=10
        )
        assert response.status_code == 200, response.text
    deadline = time.monotonic() + 10
    executions: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        executions = _executions_of_rule(deployment, rule)
        if executions and executions[0]["status"] == "completed":
            break
        time.sleep(0.1)
    time.sleep(0.5)  # give a wrongly matching second event the time to show up
    executions = _executions_of_rule(deployment, rule)
    assert len(executions) == 1, executions
    execution = deployment.wait_execution(executions[0]["id"], {"completed"})
    assert execution["config"]["message"] == "deploy of billing"
    assert execution["result"]["stdout"] == "deploy of billing"


def test_failing_script_is_failed_with_exit_code_and_stderr(deployment: Deployment) -> None:
    action = _action(deployment, "echo 'disk is full' >&2; exit 1")
    execution = deployment.wait_execution(_run(deployment, action), {"completed", "failed"})
    assert execution["status"] == "failed"
    assert execution["result"]["exit_code"] == 1
    assert "disk is full" in execution["result"]["error"]


def test_timeout_kills_the_process_group(deployment: Deployment, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    action = _action(
        deployment, f"sleep 30 & echo $! > {pids}.child; echo $$ > {pids}; wait", timeout_seconds=1
    )
    started = time.monotonic()
    execution = deployment.wait_execution(
        _run(deployment, action), {"timeout", "failed", "completed"}, timeout=10
    )
    assert execution["status"] == "timeout", execution
    assert time.monotonic() - started < 3
    for path in (pids, Path(f"{pids}.child")):
        pid = int(_wait_file(path))
        deadline = time.monotonic() + 1
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _pid_alive(pid), f"process {pid} survived the timeout"


def test_cancel_kills_a_running_action(deployment: Deployment, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    action = _action(deployment, f"sleep 30 & echo $! > {pids}.child; echo $$ > {pids}; wait")
    execution_id = _run(deployment, action)
    deployment.wait_execution(execution_id, {"running"})
    pid = int(_wait_file(pids))
    child = int(_wait_file(Path(f"{pids}.child")))
    response = deployment.request("POST", f"/api/v1/executions/{execution_id}/cancel")
    assert response.status_code == 200, response.text
    execution = deployment.wait_execution(execution_id, {"cancelled", "failed", "completed"}, timeout=10)
    assert execution["status"] == "cancelled"
    deadline = time.monotonic() + 2
    while (_pid_alive(pid) or _pid_alive(child)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _pid_alive(pid) and not _pid_alive(child)


def test_secret_parameter_reaches_the_action_and_nothing_else(deployment: Deployment) -> None:
    secret = f"S3cr3t-{uuid.uuid4().hex}"
    digest = hashlib.sha256(secret.encode()).hexdigest()
    # The action proves it got the secret (hash check), then echoes its stdin, which must be redacted.
    script = (
        'params=$(sed "/^---ATTUNE_PARAMS_END---$/q" | head -n 1); '
        'token=$(printf %s "$params" | '
        'python3 -c \'import json,sys; print(json.load(sys.stdin)["token"], end="")\'); '
        f'[ "$(printf %s "$token" | sha256sum | cut -d" " -f1)" = "{digest}" ] || exit 3; '
        'echo "got $params"; echo "also $token" >&2'
    )
    action = _action(
        deployment,
        script,
        param_schema={"token": {"type": "string", "secret": True, "required": True}},
        parameter_format="json",
    )
    execution_id = _run(deployment, action, {"token": secret})
    execution = deployment.wait_execution(execution_id, {"completed", "failed"})
    assert execution["status"] == "completed", (execution["result"], deployment.log_text()[-3000:])
    assert "********" in execution["result"]["stdout"]
    texts = [
        deployment.request("GET", f"/api/v1/executions/{execution_id}").text,
        deployment.request("GET", "/api/v1/executions", params={"per_page": 100}).text,
        deployment.request("GET", f"/api/v1/executions/{execution_id}/logs").text,
    ]
    stderr_log = execution["result"].get("stderr_log")
    if stderr_log:
        texts.append(Path(stderr_log).read_text())
    for log in deployment.workdir.rglob("*.log"):
        texts.append(log.read_text(errors="replace"))
    for text in texts:
        assert secret not in text


def _local_wheel(directory: Path, name: str, value: str) -> Path:
    """A pure-Python wheel built by hand: pip installs it with no network and no build step."""
    dist = f"{name}-1.0.0"
    wheel = directory / f"{dist}-py3-none-any.whl"
    files = {
        f"{name}/__init__.py": f"VALUE = {value!r}\n",
        f"{dist}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0.0\n",
        f"{dist}.dist-info/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    records = []
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, content in files.items():
            archive.writestr(path, content)
            digest = base64.urlsafe_b64encode(hashlib.sha256(content.encode()).digest()).rstrip(b"=").decode()
            records.append(f"{path},sha256={digest},{len(content.encode())}")
        records.append(f"{dist}.dist-info/RECORD,,")
        archive.writestr(f"{dist}.dist-info/RECORD", "\n".join(records) + "\n")
    return wheel


def _register(deployment: Deployment, pack_dir: Path) -> None:
    deployment.post("/api/v1/packs/register", {"path": str(pack_dir), "skip_tests": True})


def test_python_action_runs_in_the_packs_own_virtualenv(deployment: Deployment, tmp_path: Path) -> None:
    pack = f"py{uuid.uuid4().hex[:6]}"
    pack_dir = tmp_path / pack
    (pack_dir / "actions").mkdir(parents=True)
    wheel = _local_wheel(tmp_path, "attune_acc_greeting", "hello from a local wheel")
    (pack_dir / "requirements.txt").write_text(f"{wheel}\n")
    (pack_dir / "pack.yaml").write_text(f"ref: {pack}\nversion: 1.0.0\nlabel: Py\n")
    (pack_dir / "actions" / "greet.yaml").write_text(
        f"ref: {pack}.greet\nrunner_type: python\nentry_point: greet.py\noutput_format: json\n"
    )
    (pack_dir / "actions" / "greet.py").write_text(
        "import json, sys\nimport attune_acc_greeting\n"
        "print(json.dumps({'value': attune_acc_greeting.VALUE, 'prefix': sys.prefix}))\n"
    )
    _register(deployment, pack_dir)
    execution = deployment.wait_execution(
        _run(deployment, f"{pack}.greet"), {"completed", "failed"}, timeout=120
    )
    assert execution["status"] == "completed", (execution["result"], deployment.log_text()[-3000:])
    data = execution["result"]["data"]
    assert data["value"] == "hello from a local wheel"
    assert f"/{pack}/python" in data["prefix"], data["prefix"]


def test_node_action_runs_with_node_path(deployment: Deployment, tmp_path: Path) -> None:
    pack = f"js{uuid.uuid4().hex[:6]}"
    pack_dir = tmp_path / pack
    (pack_dir / "actions").mkdir(parents=True)
    lib = tmp_path / "greet-lib"
    lib.mkdir()
    (lib / "package.json").write_text(
        json.dumps({"name": "greet-lib", "version": "1.0.0", "main": "index.js"})
    )
    (lib / "index.js").write_text("module.exports = () => 'hello from node';\n")
    (pack_dir / "package.json").write_text(
        json.dumps({"name": pack, "version": "1.0.0", "dependencies": {"greet-lib": f"file:{lib}"}})
    )
    (pack_dir / "pack.yaml").write_text(f"ref: {pack}\nversion: 1.0.0\nlabel: Js\n")
    (pack_dir / "actions" / "greet.yaml").write_text(
        f"ref: {pack}.greet\nrunner_type: nodejs\nentry_point: greet.js\noutput_format: json\n"
    )
    (pack_dir / "actions" / "greet.js").write_text(
        "const greet = require('greet-lib');\n"
        "console.log(JSON.stringify({value: greet(), node_path: process.env.NODE_PATH || ''}));\n"
    )
    _register(deployment, pack_dir)
    execution = deployment.wait_execution(
        _run(deployment, f"{pack}.greet"), {"completed", "failed"}, timeout=120
    )
    assert execution["status"] == "completed", (execution["result"], deployment.log_text()[-3000:])
    data = execution["result"]["data"]
    assert data["value"] == "hello from node"
    # ``node.js-<version>`` when the host's node matches a core.nodejs version (node 20 → node.js-20).
    assert re.search(rf"/{pack}/node\.js(-\d+)?/node_modules$", data["node_path"]), data


@pytest.mark.skipif(MODE != "scaled", reason="needs the scaled deployment (PostgreSQL + RabbitMQ pass)")
def test_killed_worker_leaves_no_running_execution(deployment: Deployment) -> None:
    action = _action(deployment, "sleep 30")
    execution_id = _run(deployment, action)
    deployment.wait_execution(execution_id, {"running"})
    worker = deployment.processes["worker"]
    worker.kill()  # SIGKILL: no graceful shutdown
    worker.wait()
    killed_at = time.monotonic()
    execution = deployment.wait_execution(
        execution_id, {"abandoned", "failed", "requested", "scheduled"}, timeout=5
    )
    elapsed = time.monotonic() - killed_at
    assert elapsed <= 2 * deployment.heartbeat_interval + 0.5, f"left running after {elapsed:.2f} s"
    assert execution["status"] != "running"
    # A second worker takes new work. The run is submitted once it is live: a run nobody can take
    # fails after executor.no_worker_timeout (10 s here), which a loaded CI machine can exceed
    # while the new worker starts.
    name = f"worker-b-{deployment.port}"
    deployment.spawn("worker-b", "worker", "--name", name)
    deadline = time.monotonic() + 60
    while not any(w["name"] == name and w["live"] for w in deployment.get("/api/v1/workers")):
        assert time.monotonic() < deadline, f"{name} did not come up\n{deployment.log_text()}"
        time.sleep(0.2)
    fresh = deployment.wait_execution(_run(deployment, "core.noop"), {"completed", "failed"}, timeout=20)
    assert fresh["status"] == "completed"
    assert fresh["worker"] is not None
