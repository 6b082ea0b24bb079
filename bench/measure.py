"""Measurement helpers shared by every benchmark here (stdlib only, Linux ``/proc``).

The method follows the peer kit that measured n8n and Prefect on this kind of machine, so that
figures are comparable: wall-clock times from ``time.perf_counter()`` on the client,
nearest-rank percentiles, a plain ``urllib`` client (a new connection per request), and a
``/proc`` sampler that sums the RSS and CPU of the server's process trees. See
docs/performance.md.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import threading
import time
import urllib.request
from dataclasses import dataclass
from typing import Any

CLK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile (``p`` in 0..100): the smallest value with at least p % of the
    values at or below it, i.e. rank ⌈p/100 · n⌉; NaN for no values."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = math.ceil(p * len(ordered) / 100)
    return ordered[max(1, min(len(ordered), rank)) - 1]


def summary_ms(samples_s: list[float]) -> dict[str, Any]:
    """n, p50 (median), p95 (nearest rank), min, max and mean, in milliseconds."""
    ms = [x * 1000 for x in samples_s]
    if not ms:
        return {"n": 0}
    return {
        "n": len(ms),
        "p50_ms": round(statistics.median(ms), 2),
        "p95_ms": round(pct(ms, 95), 2),
        "min_ms": round(min(ms), 2),
        "max_ms": round(max(ms), 2),
        "mean_ms": round(statistics.mean(ms), 2),
    }


def median_run(runs: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """The run whose ``key`` is the median (the middle one of an odd count, the upper middle else)."""
    return sorted(runs, key=lambda r: float(r[key]))[len(runs) // 2]


def loadavg() -> tuple[float, float, float]:
    """The 1, 5 and 15-minute load averages."""
    with open("/proc/loadavg") as f:
        one, five, fifteen = f.read().split()[:3]
    return float(one), float(five), float(fifteen)


def http(
    method: str, url: str, body: Any = None, headers: dict[str, str] | None = None, timeout: float = 120
) -> tuple[int, bytes]:
    """A tiny HTTP client, only ever used against 127.0.0.1. Raises ``HTTPError`` on 4xx/5xx."""
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(f"the benchmark only talks to 127.0.0.1, not {url}")
    data = None
    h = dict(headers or {})
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        h.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=data, method=method, headers=h)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return int(r.status), bytes(r.read())


# ---------------------------------------------------------------- /proc
@dataclass(frozen=True)
class ProcStat:
    ppid: int
    own: int  # utime + stime, clock ticks
    child: int  # cutime + cstime: reaped children
    rss: int  # bytes


def _read_stat(pid: int) -> ProcStat:
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    rest = s[s.rindex(")") + 2 :].split()
    # after comm: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14) ... rss(21)
    return ProcStat(
        ppid=int(rest[1]),
        own=int(rest[11]) + int(rest[12]),
        child=int(rest[13]) + int(rest[14]),
        rss=int(rest[21]) * PAGE,
    )


def proc_tree(roots: list[int]) -> dict[int, ProcStat]:
    """Every live descendant (inclusive) of the given root pids."""
    stats: dict[int, ProcStat] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stats[int(d)] = _read_stat(int(d))
            except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
                pass
    children: dict[int, list[int]] = {}
    for pid, st in stats.items():
        children.setdefault(st.ppid, []).append(pid)
    out: dict[int, ProcStat] = {}
    todo = [r for r in roots if r in stats]
    while todo:
        p = todo.pop()
        if p in out:
            continue
        out[p] = stats[p]
        todo.extend(children.get(p, []))
    return out


def tree_rss_mib(roots: list[int]) -> float:
    return round(sum(s.rss for s in proc_tree(roots).values()) / 2**20, 1)


def system_cpu() -> tuple[int, int]:
    """(busy ticks, total ticks) over all CPUs, from /proc/stat."""
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    idle = parts[3] + parts[4]
    return sum(parts) - idle, sum(parts)


class Sampler(threading.Thread):
    """Samples the summed RSS of the process trees under ``roots`` every ``interval`` s and
    accounts their CPU time over the window.

    CPU = over every pid seen, (own delta + reaped-children delta), minus, for each seen pid that
    exited and whose parent was seen, its cumulative own + child CPU at its last sample (that
    amount reappears in the parent's cutime when it is reaped and must not count twice).
    Short-lived children never sampled (``echo``) still count through their parent's cutime.
    """

    def __init__(self, roots: list[int], interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.roots, self.interval = list(roots), interval
        self.peak_rss = 0
        self.first: dict[int, tuple[int, int]] = {}
        self.last: dict[int, tuple[int, int]] = {}
        self.ppid: dict[int, int] = {}
        self.alive: set[int] = set()
        self._halt = threading.Event()
        self.t0 = 0.0
        self.sys0 = (0, 0)

    def _sample(self) -> None:
        tree = proc_tree(self.roots)
        self.peak_rss = max(self.peak_rss, sum(s.rss for s in tree.values()))
        for pid, s in tree.items():
            self.first.setdefault(pid, (s.own, s.child))
            self.ppid.setdefault(pid, s.ppid)
            self.last[pid] = (s.own, s.child)
        self.alive = set(tree)

    def run(self) -> None:
        while not self._halt.is_set():
            self._sample()
            self._halt.wait(self.interval)

    def begin(self) -> Sampler:
        self.t0 = time.monotonic()
        self.sys0 = system_cpu()
        self._sample()
        self.start()
        return self

    def finish(self) -> dict[str, Any]:
        self._halt.set()
        self.join()
        self._sample()
        wall = time.monotonic() - self.t0
        busy1, total1 = system_cpu()
        ticks = 0
        for pid, (o1, c1) in self.last.items():
            o0, c0 = self.first[pid]
            ticks += (o1 - o0) + (c1 - c0)
            if pid not in self.alive and self.ppid[pid] in self.last:
                ticks -= o1 + c1
        peer_cpu_s = ticks / CLK
        busy, total = busy1 - self.sys0[0], total1 - self.sys0[1]
        return {
            "wall_s": round(wall, 3),
            "peak_tree_rss_mib": round(self.peak_rss / 2**20, 1),
            "peer_cpu_s": round(peer_cpu_s, 2),
            # percent of ONE core (200 % = both cores of a 2-core machine busy)
            "peer_cpu_pct_of_one_core": round(100 * peer_cpu_s / wall, 1) if wall else None,
            # the whole machine, load generator included, percent of ALL cores
            "system_cpu_busy_pct_of_all_cores": round(100 * busy / total, 1) if total else None,
        }


def machine() -> str:
    """CPU model, cores and memory of this machine, for the header of a table."""
    model = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    return f"{os.cpu_count()} × {model}, {mem_kib / 2**20:.0f} GiB RAM"
