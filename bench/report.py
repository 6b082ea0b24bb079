"""Tables of benchmark results (Markdown, so they paste into docs/performance.md).

Inputs are the JSON-able dicts returned by ``attune_driver.AttuneBench`` and
``n8n_driver.N8nBench``; a workload missing from a result dict shows as "—".
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

DASH = "—"

Results = dict[str, Any]


def dig(results: Results, *path: str) -> Any:
    """``results[path[0]][path[1]]…`` or None where any step is missing."""
    node: Any = results
    for step in path:
        if not isinstance(node, dict) or step not in node or node[step] is None:
            return None
        node = node[step]
    return node


def num(value: float | None, digits: int = 0) -> str:
    """A number with thousands separators, or a dash for None/NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    return f"{value:,.{digits}f}"


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def ratio(a: float | None, b: float | None) -> str:
    """``a ÷ b``: two decimals below 10, whole numbers from 10 up; a dash if undefined."""
    if a is None or b is None or b == 0 or math.isnan(a) or math.isnan(b):
        return DASH
    r = a / b
    return f"{r:,.0f}" if r >= 10 else f"{r:.2f}"


def load(results: Results, *path: str) -> str:
    """The 1-minute load average at the start and end of a run, ``"2.1→3.4"``."""
    pair = dig(results, *path, "load_1m")
    if not pair:
        return DASH
    return f"{pair[0]:.1f}→{pair[1]:.1f}"


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


# ------------------------------------------------------------------ Attune alone
def _w4_cell(r: Results, size: str) -> str:
    median = dig(r, "w4", size, "median")
    if not median:
        return DASH
    per_item = ms(median.get("peer_cpu_s"))
    cpu = f"; {num(per_item / int(size), 1)} ms CPU/item" if per_item is not None else ""
    return f"{num(median['wall_s'], 2)} s{cpu}; peak RSS {num(median.get('peak_tree_rss_mib'))} MiB"


def attune_table(r: Results) -> str:
    """One row per workload that ran: what is measured, the figures, the load average meanwhile."""
    rows: list[tuple[str, list[str]]] = [
        (
            "w1",
            [
                "W1 webhook → `echo hello` completed",
                "p50 / p95",
                f"{num(dig(r, 'w1', 'p50_ms'), 1)} / {num(dig(r, 'w1', 'p95_ms'), 1)} ms",
            ],
        ),
        (
            "w2",
            [
                "W2 8 clients × 30 s",
                "runs/s (server CPU per run; errors)",
                f"{num(dig(r, 'w2', 'runs_per_s'), 1)} ({num(dig(r, 'w2', 'cpu_ms_per_run'), 1)} ms; "
                f"{num(dig(r, 'w2', 'errors'))})",
            ],
        ),
        (
            "w3",
            [
                "W3 40 sequential `core.noop`",
                "total (per step; marginal per step)",
                f"{num(dig(r, 'w3', 'chain40', 'median', 'wall_s'), 3)} s "
                f"({num(dig(r, 'w3', 'per_step_ms'), 1)} ms; "
                f"{num(dig(r, 'w3', 'marginal_per_step_ms'), 1)} ms)",
            ],
        ),
        (
            "w3",
            [
                "W3 baseline: 1 `core.noop`",
                "total",
                f"{num(ms(dig(r, 'w3', 'chain1', 'median', 'wall_s')), 1)} ms",
            ],
        ),
    ]
    for size in sorted((k for k in (dig(r, "w4") or {}) if k.isdigit()), key=int):
        rows.append(
            (
                "w4",
                [
                    f"W4 `with_items` over {int(size):,} `core.noop`",
                    "total (CPU per item; peak RSS)",
                    _w4_cell(r, size),
                ],
            )
        )
    rows += [
        (
            "py",
            [
                "Python action `pass`",
                "p50 / p95",
                f"{num(dig(r, 'py', 'p50_ms'), 1)} / {num(dig(r, 'py', 'p95_ms'), 1)} ms",
            ],
        ),
        (
            "idle",
            [
                "Idle RSS (fresh server, pack registered)",
                "sum over the process tree",
                f"{num(dig(r, 'idle', 'idle_tree_rss_mib'))} MiB "
                f"({num(dig(r, 'idle', 'processes'))} process(es))",
            ],
        ),
    ]
    return markdown_table(
        ["Workload", "Figure", "Attune", "load 1m"],
        [[*cells, load(r, workload)] for workload, cells in rows if dig(r, workload) is not None],
    )


# ------------------------------------------------------------------ Attune beside n8n
@dataclass(frozen=True)
class Metric:
    label: str
    attune: Callable[[Results], float | None]
    n8n: Callable[[Results], float | None]
    digits: int
    workload: str  # whose load_1m to show
    higher_is_better: bool = False


def _path(*path: str, scale: float = 1.0) -> Callable[[Results], float | None]:
    def get(results: Results) -> float | None:
        value = dig(results, *path)
        return None if value is None else float(value) * scale

    return get


def _none(_: Results) -> float | None:
    return None


def _attune_w4(results: Results) -> float | None:
    return _path("w4", "1000", "median", "wall_s", scale=1000)(results)


METRICS = (
    Metric("W1 p50, ms", _path("w1", "p50_ms"), _path("w1", "p50_ms"), 1, "w1"),
    Metric("W1 p95, ms", _path("w1", "p95_ms"), _path("w1", "p95_ms"), 1, "w1"),
    Metric("W2 runs/s", _path("w2", "runs_per_s"), _path("w2", "runs_per_s"), 1, "w2", True),
    Metric(
        "W2 server CPU per run, ms", _path("w2", "cpu_ms_per_run"), _path("w2", "cpu_ms_per_run"), 1, "w2"
    ),
    Metric(
        "W3 40 steps, total ms",
        _path("w3", "chain40", "median", "wall_s", scale=1000),
        _path("w3", "chain40", "median", "wall_s", scale=1000),
        1,
        "w3",
    ),
    Metric("W3 per step (total/40), ms", _path("w3", "per_step_ms"), _path("w3", "per_step_ms"), 2, "w3"),
    Metric(
        "W3 1 step, total ms",
        _path("w3", "chain1", "median", "wall_s", scale=1000),
        _path("w3", "chain1", "median", "wall_s", scale=1000),
        1,
        "w3",
    ),
    Metric(
        "W4 1,000 items, ms (n8n: Loop Over Items, 1,000 NoOp runs)",
        _attune_w4,
        _path("w4", "loop", "median", "wall_s", scale=1000),
        0,
        "w4",
    ),
    Metric(
        "W4 1,000 items, ms (n8n: one NoOp over a batch of 1,000)",
        _attune_w4,
        _path("w4", "batch", "median", "wall_s", scale=1000),
        0,
        "w4",
    ),
    Metric(
        "W4 peak RSS, MiB (n8n: loop)",
        _path("w4", "1000", "median", "peak_tree_rss_mib"),
        _path("w4", "loop", "median", "peak_tree_rss_mib"),
        0,
        "w4",
    ),
    Metric(
        "W4 server CPU, s (n8n: loop)",
        _path("w4", "1000", "median", "peer_cpu_s"),
        _path("w4", "loop", "median", "peer_cpu_s"),
        2,
        "w4",
    ),
    Metric(
        "Idle RSS (fresh server), MiB",
        _path("idle", "idle_tree_rss_mib"),
        _path("idle", "idle_tree_rss_mib"),
        0,
        "idle",
    ),
    Metric("Python `pass` action p50, ms", _path("py", "p50_ms"), _none, 1, "py"),
)


def _leader(metric: Metric, a: float | None, b: float | None) -> str:
    if a is None or b is None or a == b:
        return DASH
    attune_ahead = (a > b) == metric.higher_is_better
    return "Attune" if attune_ahead else "n8n"


def compare_table(attune: Results, n8n: Results) -> str:
    """Attune beside n8n: both figures, Attune ÷ n8n, who is ahead, the load during each run."""
    rows = []
    for m in METRICS:
        a, b = m.attune(attune), m.n8n(n8n)
        rows.append(
            [
                m.label + (" (higher is better)" if m.higher_is_better else ""),
                num(a, m.digits),
                num(b, m.digits),
                ratio(a, b),
                _leader(m, a, b),
                load(attune, m.workload),
                load(n8n, m.workload),
            ]
        )
    return markdown_table(
        ["Figure", "Attune", "n8n", "Attune ÷ n8n", "ahead", "load 1m Attune", "load 1m n8n"], rows
    )
