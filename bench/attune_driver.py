"""W1–W4, the Python ``pass`` action and idle RSS against a running Attune server.

The workloads are those of the peer kit (docs/performance.md, "Workloads"):

* W1: POST a webhook whose rule runs ``echo hello`` in a new process; 50 sequential requests
  after 5 warm-ups, time from the POST until the run is recorded completed.
* W2: W1 from 8 client threads for 30 s; completed runs/s and the server's CPU per run.
* W3: a workflow of 40 sequential ``core.noop`` tasks (and a 1-task baseline), median of 3 after
  a warm-up.
* W4: a ``with_items`` task over 1,000 (optionally 10,000) ``core.noop`` items, at the
  concurrency the engine allows by default; median of 3 after a warm-up, peak RSS and CPU.
* py: a Python action whose body is ``pass``, 20 runs after 3 warm-ups.

How a webhook run is known to be finished is a :class:`Completion`: by default the webhook is
answered after the run (``?wait=``, :class:`WaitingCompletion`), as the kit allows; with
``--completion poll`` the webhook answers at once and :class:`PollingCompletion` polls the API
every 20 ms. W3, W4 and py start their run with ``POST /api/v1/executions/execute`` and, by
default, learn its end from one ``GET /api/v1/executions/{id}?wait=`` that answers when it is
terminal; with ``--completion poll`` they poll that GET every 20 ms.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from measure import Sampler, http, loadavg, median_run, proc_tree, summary_ms, tree_rss_mib

POLL_S = 0.020  # the prescribed polling interval
TERMINAL = {"completed", "failed", "timeout", "cancelled", "abandoned"}
LOGIN = {"login": "test@attune.local", "password": "TestPass123!"}
PACK_REF = "benchw"


class AttuneClient:
    """Bearer-token JSON calls to one server; logs in again when the token expires."""

    def __init__(self, base: str) -> None:
        self.base = base
        self._token = ""
        self._lock = threading.Lock()

    def login(self) -> None:
        _, raw = http("POST", self.base + "/auth/login", LOGIN)
        self._token = json.loads(raw)["data"]["access_token"]

    def api(self, method: str, path: str, body: Any = None) -> Any:
        for attempt in (1, 2):
            if not self._token:
                with self._lock:
                    if not self._token:
                        self.login()
            try:
                _, raw = http(
                    method, self.base + path, body, headers={"Authorization": "Bearer " + self._token}
                )
            except urllib.error.HTTPError as exc:
                if exc.code == 401 and attempt == 1:
                    self._token = ""
                    continue
                raise
            return json.loads(raw)["data"] if raw else None
        raise AssertionError("unreachable")


def _ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def server_recorded_s(execution: dict[str, Any]) -> float:
    """The run's own duration as the server recorded it (created → last update)."""
    return _ts(execution["updated"]) - _ts(execution["created"])


# ------------------------------------------------------------------ the pack
def chain_workflow(n: int) -> str:
    lines = [f"ref: {PACK_REF}.chain{n}", f"label: chain {n}", 'version: "1.0.0"', "tasks:"]
    for i in range(n):
        lines += [f"  - name: t{i}", "    action: core.noop"]
        if i + 1 < n:
            lines += ["    next:", '      - when: "{{ succeeded() }}"', f"        do: [t{i + 1}]"]
    return "\n".join(lines) + "\n"


def items_workflow(concurrency: int | None) -> str:
    limit = f"\n    concurrency: {concurrency}" if concurrency else ""
    return (
        f'ref: {PACK_REF}.items\nlabel: items\nversion: "1.0.0"\n'
        "parameters:\n  items: {type: array, required: true}\n"
        "tasks:\n  - name: each\n    action: core.noop\n"
        f'    with_items: "{{{{ parameters.items }}}}"{limit}\n'
    )


def pack_files(items_concurrency: int | None = None) -> dict[str, str]:
    """The benchmark pack: the W1 action, trigger and rule, the py action and the workflows."""
    return {
        "pack.yaml": f"ref: {PACK_REF}\nlabel: Bench W1-W4\nversion: 1.0.0\n",
        "actions/echo_hello.yaml": (
            f"ref: {PACK_REF}.echo_hello\nlabel: echo hello\nrunner_type: shell\nentry_point: echo_hello.sh\n"
        ),
        "actions/echo_hello.sh": "#!/bin/sh\necho hello\n",
        "actions/py_pass.yaml": (
            f"ref: {PACK_REF}.py_pass\nlabel: python pass\nrunner_type: python\nentry_point: py_pass.py\n"
        ),
        "actions/py_pass.py": "pass\n",
        "triggers/hook.yaml": f"ref: {PACK_REF}.hook\nlabel: Bench hook\n",
        "rules/on_hook.yaml": (
            f"ref: {PACK_REF}.on_hook\nlabel: on hook\ntrigger_ref: {PACK_REF}.hook\n"
            f"action_ref: {PACK_REF}.echo_hello\n"
        ),
        "workflows/chain40.yaml": chain_workflow(40),
        "workflows/chain1.yaml": chain_workflow(1),
        "workflows/items.yaml": items_workflow(items_concurrency),
    }


def register_pack(client: AttuneClient, root: str, items_concurrency: int | None = None) -> str:
    """Write the pack under ``root``, register it by path, enable the webhook; -> its key."""
    for rel, text in pack_files(items_concurrency).items():
        path = os.path.join(root, PACK_REF, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
        if path.endswith(".sh"):
            os.chmod(path, 0o755)
    client.api(
        "POST",
        "/api/v1/packs/register",
        {"path": os.path.join(root, PACK_REF), "force": True, "skip_tests": True},
    )
    # enable keeps an existing key
    data = client.api("POST", f"/api/v1/triggers/{PACK_REF}.hook/webhooks/enable")
    return str(data["webhook_key"])


# ------------------------------------------------------------------ completion of a webhook run
class Completion(Protocol):
    """Fires the W1 webhook once and returns (seconds until the run is completed, execution)."""

    def __call__(self, key: str) -> tuple[float, dict[str, Any]]: ...


class PollingCompletion:
    """The webhook answers with the event id; poll its enforcement, then the execution, every
    ``poll_s`` until the execution is terminal."""

    def __init__(self, client: AttuneClient, poll_s: float = POLL_S, timeout: float = 120) -> None:
        self.client, self.poll_s, self.timeout = client, poll_s, timeout

    def __call__(self, key: str) -> tuple[float, dict[str, Any]]:
        t0 = time.perf_counter()
        _, raw = http("POST", f"{self.client.base}/api/v1/webhooks/{key}", {"payload": {}})
        event = json.loads(raw)["data"]["event_id"]
        deadline = time.monotonic() + self.timeout
        enforcement = None
        while enforcement is None:
            rows = self.client.api("GET", f"/api/v1/enforcements?event={event}")
            if rows:
                enforcement = rows[0]["id"]
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"no enforcement for event {event}")
            time.sleep(self.poll_s)
        while True:
            rows = self.client.api("GET", f"/api/v1/enforcements/{enforcement}/executions")
            if rows and rows[0]["status"] in TERMINAL:
                return time.perf_counter() - t0, dict(rows[0])
            if time.monotonic() > deadline:
                raise TimeoutError(f"the execution of enforcement {enforcement} did not finish")
            time.sleep(self.poll_s)


class WaitingCompletion:
    """The webhook answers after the run (``?wait=``, docs/webhooks.md): the HTTP round trip is
    the time until the run is recorded complete, as with n8n's ``responseMode=lastNode``."""

    def __init__(self, client: AttuneClient, timeout: float = 60) -> None:
        self.client, self.timeout = client, timeout

    def __call__(self, key: str) -> tuple[float, dict[str, Any]]:
        t0 = time.perf_counter()
        _, raw = http(
            "POST", f"{self.client.base}/api/v1/webhooks/{key}?wait={self.timeout:g}", {"payload": {}}
        )
        dt = time.perf_counter() - t0
        data = json.loads(raw)["data"]
        if not data.get("completed") or not data.get("executions"):
            raise TimeoutError(f"the run of event {data['event_id']} did not finish: {data}")
        return dt, dict(data["executions"][0])


#: How W1/W2 learn that a run finished, by name (``--completion``): the webhook answered after the
#: run (``wait``, the default) or the prescribed 20 ms polling (``poll``).
COMPLETIONS: dict[str, Callable[[AttuneClient], Completion]] = {
    "wait": WaitingCompletion,
    "poll": PollingCompletion,
}


# ------------------------------------------------------------------ workloads
def _with_load(result: dict[str, Any], load_start: float) -> dict[str, Any]:
    result["load_1m"] = [load_start, loadavg()[0]]
    return result


class AttuneBench:
    """The workloads against one server whose process trees are rooted at ``pids``."""

    def __init__(self, client: AttuneClient, key: str, pids: list[int], completion: str = "wait") -> None:
        self.client, self.key, self.pids = client, key, pids
        self.fire = COMPLETIONS[completion](client)
        self.completion = completion

    def idle(self) -> dict[str, Any]:
        now = loadavg()[0]
        return {
            "load_1m": [now, now],
            "idle_tree_rss_mib": tree_rss_mib(self.pids),
            "processes": len(proc_tree(self.pids)),
        }

    def w1(self, n: int = 50, warm: int = 5) -> dict[str, Any]:
        load = loadavg()[0]
        lat, recorded = [], []
        for i in range(warm + n):
            dt, execution = self.fire(self.key)
            if execution["status"] != "completed":
                raise AssertionError(f"W1 run ended {execution['status']}: {execution}")
            if i >= warm:
                lat.append(dt)
                recorded.append(server_recorded_s(execution))
        full = self.client.api("GET", f"/api/v1/executions/{execution['id']}")
        return _with_load(
            {
                "what": f"webhook → echo hello recorded completed ({self.completion})",
                **summary_ms(lat),
                "server_recorded": summary_ms(recorded),
                "last_stdout": (full.get("result") or {}).get("stdout"),
            },
            load,
        )

    def w2(self, clients: int = 8, duration: float = 30.0) -> dict[str, Any]:
        for _ in range(3):
            self.fire(self.key)
        load = loadavg()[0]
        done, errors, lat = [0], [0], []
        lock = threading.Lock()
        stop_at = time.perf_counter() + duration

        def client() -> None:
            while time.perf_counter() < stop_at:
                try:
                    dt, execution = self.fire(self.key)
                    ok = execution["status"] == "completed"
                except Exception:
                    ok = False
                with lock:
                    if ok:
                        done[0] += 1
                        lat.append(dt)
                    else:
                        errors[0] += 1

        sampler = Sampler(self.pids, interval=0.2).begin()
        threads = [threading.Thread(target=client) for _ in range(clients)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        usage = sampler.finish()
        return _with_load(
            {
                "what": f"{clients} clients × {duration:.0f} s of W1 ({self.completion})",
                "completed": done[0],
                "errors": errors[0],
                "wall_s": round(wall, 2),
                "runs_per_s": round(done[0] / wall, 2),
                "cpu_ms_per_run": round(usage["peer_cpu_s"] * 1000 / done[0], 1) if done[0] else None,
                **{k: v for k, v in usage.items() if k != "wall_s"},
                "latency": summary_ms(lat),
            },
            load,
        )

    def finished(self, execution_id: int, timeout: float = 300) -> dict[str, Any]:
        """The execution once terminal: long-polled (``?wait=``), or polled every 20 ms."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.completion == "wait":
                execution = self.client.api("GET", f"/api/v1/executions/{execution_id}?wait=60")
            else:
                execution = self.client.api("GET", f"/api/v1/executions/{execution_id}")
            if execution["status"] in TERMINAL:
                return dict(execution)
            if self.completion != "wait":
                time.sleep(POLL_S)
        raise AssertionError(f"execution {execution_id} not terminal after {timeout} s")

    def run_action(
        self, ref: str, params: dict[str, Any] | None = None, sample: bool = False
    ) -> dict[str, Any]:
        """Execute ``ref`` and wait until it is terminal (:meth:`finished`)."""
        sampler = Sampler(self.pids, interval=0.05).begin() if sample else None
        t0 = time.perf_counter()
        data = self.client.api(
            "POST", "/api/v1/executions/execute", {"action_ref": ref, "parameters": params or {}}
        )
        execution = self.finished(int(data["id"]))
        out: dict[str, Any] = {
            "wall_s": round(time.perf_counter() - t0, 4),
            "status": execution["status"],
            "server_recorded_s": round(server_recorded_s(execution), 4),
        }
        if sampler:
            usage = sampler.finish()
            out.update(peak_tree_rss_mib=usage["peak_tree_rss_mib"], peer_cpu_s=usage["peer_cpu_s"])
        if execution["status"] != "completed":
            raise AssertionError(f"{ref} ended {execution['status']}: {execution.get('result')}")
        return out

    def timed_reps(
        self,
        ref: str,
        params: dict[str, Any] | None = None,
        reps: int = 3,
        sample: bool = False,
        warm_up: bool = True,
        single_if_over: float | None = None,
    ) -> dict[str, Any]:
        """A warm-up run, then ``reps`` timed runs (one if the warm-up took over
        ``single_if_over`` s); the median by wall time."""
        load = loadavg()[0]
        warm = self.run_action(ref, params, sample=sample) if warm_up else None
        if single_if_over and warm and warm["wall_s"] > single_if_over:
            reps = 1
        runs = [self.run_action(ref, params, sample=sample) for _ in range(reps)]
        return _with_load({"warmup": warm, "reps": runs, "median": median_run(runs, "wall_s")}, load)

    def w3(self, reps: int = 3) -> dict[str, Any]:
        load = loadavg()[0]
        r40 = self.timed_reps(f"{PACK_REF}.chain40", reps=reps)
        r1 = self.timed_reps(f"{PACK_REF}.chain1", reps=reps)
        t40, t1 = r40["median"]["wall_s"], r1["median"]["wall_s"]
        return _with_load(
            {
                "what": "40 sequential core.noop tasks vs 1",
                "chain40": r40,
                "chain1": r1,
                "per_step_ms": round(t40 / 40 * 1000, 2),
                "marginal_per_step_ms": round((t40 - t1) / 39 * 1000, 2),
            },
            load,
        )

    def w4(self, sizes: tuple[int, ...] = (1000,), reps: int = 3) -> dict[str, Any]:
        load = loadavg()[0]
        out: dict[str, Any] = {"idle_tree_rss_mib_before": tree_rss_mib(self.pids)}
        for i, size in enumerate(sizes):
            # the first size warms the server up for the larger ones, which run once
            out[str(size)] = self.timed_reps(
                f"{PACK_REF}.items",
                {"items": list(range(size))},
                reps=reps if i == 0 else 1,
                sample=True,
                warm_up=i == 0,
                single_if_over=60,
            )
        return _with_load(out, load)

    def py(self, n: int = 20, warm: int = 3) -> dict[str, Any]:
        load = loadavg()[0]
        lat, recorded = [], []
        for i in range(warm + n):
            r = self.run_action(f"{PACK_REF}.py_pass")
            if i >= warm:
                lat.append(r["wall_s"])
                recorded.append(r["server_recorded_s"])
        return _with_load(
            {
                "what": f"python `pass` action, completion: {self.completion}",
                **summary_ms(lat),
                "server_recorded": summary_ms(recorded),
            },
            load,
        )
