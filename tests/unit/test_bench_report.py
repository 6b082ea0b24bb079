"""The benchmark's percentile and table helpers (bench/measure.py, bench/report.py)."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def measure() -> ModuleType:
    return _load("measure")


@pytest.fixture(scope="module")
def report() -> ModuleType:
    return _load("report")


def test_nearest_rank_percentile(measure: ModuleType) -> None:
    twenty = [float(x) for x in range(20, 0, -1)]  # unsorted on purpose
    assert measure.pct(twenty, 95) == 19  # rank ⌈0.95 · 20⌉ = 19, no interpolation
    assert measure.pct(twenty, 50) == 10
    assert measure.pct(twenty, 100) == 20
    assert measure.pct(twenty, 0) == 1
    fifty = [float(x) for x in range(1, 51)]
    assert measure.pct(fifty, 95) == 48  # ⌈47.5⌉
    assert measure.pct([7.0], 95) == 7
    assert math.isnan(measure.pct([], 50))


def test_summary_in_milliseconds(measure: ModuleType) -> None:
    s = measure.summary_ms([0.010, 0.030, 0.020, 0.100])
    assert s == {"n": 4, "p50_ms": 25.0, "p95_ms": 100.0, "min_ms": 10.0, "max_ms": 100.0, "mean_ms": 40.0}
    assert measure.summary_ms([]) == {"n": 0}


def test_median_run_is_the_middle_by_key(measure: ModuleType) -> None:
    runs = [{"wall_s": 3.0, "i": 0}, {"wall_s": 1.0, "i": 1}, {"wall_s": 2.0, "i": 2}]
    assert measure.median_run(runs, "wall_s")["i"] == 2


def test_ratio_and_numbers(report: ModuleType) -> None:
    assert report.ratio(1200.0, 34.0) == "35"
    assert report.ratio(48.0, 55.0) == "0.87"
    assert report.ratio(None, 3.0) == report.DASH
    assert report.ratio(3.0, 0.0) == report.DASH
    assert report.num(28123.4) == "28,123"
    assert report.num(float("nan")) == report.DASH


def _attune() -> dict[str, object]:
    return {
        "w1": {"p50_ms": 48.0, "p95_ms": 68.0, "load_1m": [2.0, 2.5]},
        "w2": {"runs_per_s": 15.0, "cpu_ms_per_run": 60.0, "errors": 0, "load_1m": [3.0, 4.0]},
        "w4": {
            "1000": {"median": {"wall_s": 30.0, "peer_cpu_s": 29.0, "peak_tree_rss_mib": 180.0}},
            "load_1m": [1.0, 1.5],
        },
        "idle": {"idle_tree_rss_mib": 150.0, "processes": 1, "load_1m": [1.0, 1.0]},
    }


def _n8n() -> dict[str, object]:
    return {
        "w1": {"p50_ms": 55.0, "p95_ms": 80.0, "load_1m": [2.2, 2.4]},
        "w2": {"runs_per_s": 20.0, "cpu_ms_per_run": 70.0, "load_1m": [3.1, 3.9]},
        "w4": {
            "batch": {"median": {"wall_s": 0.067}},
            "loop": {"median": {"wall_s": 0.5, "peak_tree_rss_mib": 600.0}},
            "load_1m": [1.2, 1.3],
        },
    }


def _row(table: str, label: str) -> list[str]:
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0] == label:
            return cells
    raise AssertionError(f"no row {label!r} in\n{table}")


def test_compare_table_ratios_leaders_and_loads(report: ModuleType) -> None:
    table = report.compare_table(_attune(), _n8n())
    assert _row(table, "W1 p50, ms") == ["W1 p50, ms", "48.0", "55.0", "0.87", "Attune", "2.0→2.5", "2.2→2.4"]
    # throughput: higher is better, so 15 vs 20 puts n8n ahead although the ratio is below 1
    assert _row(table, "W2 runs/s (higher is better)")[1:5] == ["15.0", "20.0", "0.75", "n8n"]
    assert _row(table, "W4 1,000 items, ms (n8n: Loop Over Items, 1,000 NoOp runs)")[1:5] == [
        "30,000",
        "500",
        "60",
        "n8n",
    ]
    # n8n has no Python action and W3 did not run: dashes, no made-up ratio
    assert _row(table, "Python `pass` action p50, ms")[1:5] == ["—", "—", "—", "—"]
    assert _row(table, "W3 40 steps, total ms")[3] == "—"


def test_attune_table_lists_only_what_ran(report: ModuleType) -> None:
    table = report.attune_table(_attune())
    assert _row(table, "W1 webhook → `echo hello` completed")[2:] == ["48.0 / 68.0 ms", "2.0→2.5"]
    assert _row(table, "W4 `with_items` over 1,000 `core.noop`")[2] == (
        "30.00 s; 29.0 ms CPU/item; peak RSS 180 MiB"
    )
    assert "W3" not in table and "Python" not in table
