"""Attune's benchmark: W1–W4, the Python ``pass`` action and idle RSS, printed as one table.

Starts a fresh deployment of its own (embedded: ``attune server`` on 127.0.0.1, a free port, its
own data directory; scaled: api, executors, workers and a sensor on the local PostgreSQL and
RabbitMQ with a fresh database), registers the benchmark pack, measures, stops everything.
Definitions and method: docs/performance.md.

    .venv/bin/python bench/run.py [--mode embedded|scaled] [--workers N] [--executors N]
        [--only w1,w2,w3,w4,py] [--w4-items 1000,10000] [--json results.json]

``make bench`` runs it with the defaults (embedded, everything, 1,000 items). Idle RSS is always
measured (first, on the fresh deployment); ``--only rss`` measures nothing else.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from attune_deploy import BenchDeployment
from attune_driver import COMPLETIONS, AttuneBench, AttuneClient, register_pack
from measure import loadavg, machine
from report import attune_table

WORKLOADS = ("w1", "w2", "w3", "w4", "py")
IDLE_ONLY = "rss"  # --only rss: just the idle RSS, which every run measures first
SETTLE_S = 2.0  # once the pack's environment is built, before idle RSS


def git_revision() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=Path(__file__).resolve().parent,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip() or "unknown"


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--only",
        default=",".join(WORKLOADS),
        help="comma-separated subset of " + ",".join(WORKLOADS) + f" ({IDLE_ONLY}: idle RSS only)",
    )
    parser.add_argument("--w2-duration", type=float, default=30.0, help="seconds of W2 (default 30)")
    parser.add_argument(
        "--w4-items", default="1000", help="comma-separated with_items sizes (e.g. 1000,10000)"
    )
    parser.add_argument(
        "--w4-concurrency", type=int, default=None, help="with_items concurrency (default: the engine's)"
    )
    parser.add_argument(
        "--completion",
        choices=sorted(COMPLETIONS),
        default="wait",
        help="how a run's end is learnt: the webhook answers after the run (W1/W2) and one "
        "GET ?wait= answers when the execution is terminal (W3/W4/py) (wait, default), or the "
        "client polls every 20 ms (poll)",
    )
    parser.add_argument("--json", type=Path, help="also write the raw results to this file")


def selected(args: argparse.Namespace) -> list[str]:
    names = [n.strip() for n in args.only.split(",") if n.strip() and n.strip() != IDLE_ONLY]
    unknown = sorted(set(names) - set(WORKLOADS))
    if unknown:
        raise SystemExit(f"unknown workload(s) {unknown}; choose from {', '.join(WORKLOADS)}")
    return names


def start_attune(args: argparse.Namespace, mode: str = "embedded") -> tuple[BenchDeployment, AttuneBench]:
    """A fresh deployment with the pack registered, settled; the caller stops it."""
    deployment = BenchDeployment(mode, getattr(args, "executors", 1), getattr(args, "workers", 1)).start()
    try:
        client = AttuneClient(deployment.base)
        key = register_pack(client, str(deployment.root), args.w4_concurrency)
        deployment.wait_quiet()
        time.sleep(SETTLE_S)
    except BaseException:
        deployment.stop()
        raise
    return deployment, AttuneBench(client, key, deployment.pids, args.completion)


def run_workload(bench: AttuneBench, name: str, args: argparse.Namespace) -> dict[str, Any]:
    if name == "w2":
        return bench.w2(duration=args.w2_duration)
    if name == "w4":
        return bench.w4(tuple(int(n) for n in args.w4_items.split(",") if n.strip()))
    result: dict[str, Any] = getattr(bench, name)()
    return result


def header(title: str, lines: list[str]) -> str:
    return "\n".join([f"## {title}", "", *(f"- {line}" for line in lines), ""])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mode", choices=["embedded", "scaled"], default="embedded")
    parser.add_argument("--executors", type=int, default=1, help="scaled mode: executor processes")
    parser.add_argument("--workers", type=int, default=1, help="scaled mode: worker processes")
    add_common_arguments(parser)
    args = parser.parse_args()
    names = selected(args)
    started = datetime.now().astimezone()
    load_start = loadavg()
    deployment, bench = start_attune(args, args.mode)
    results: dict[str, Any] = {"deployment": deployment.describe(), "revision": git_revision()}
    try:
        results["idle"] = bench.idle()
        for name in names:
            print(f"… {name}", file=sys.stderr, flush=True)
            results[name] = run_workload(bench, name, args)
    finally:
        deployment.stop()
    load_end = loadavg()
    results["loadavg_start"], results["loadavg_end"] = load_start, load_end
    print(
        header(
            f"Attune W1–W4, {results['deployment']}",
            [
                f"{started:%Y-%m-%d %H:%M %Z}, revision {results['revision']}",
                f"{platform.node()}: {machine()}, Python {platform.python_version()}",
                f"load average (1/5/15 min) at start {load_start}, at end {load_end}",
                f"completion: {args.completion} (W1/W2: the webhook; W3/W4/py: GET after execute)",
            ],
        )
    )
    print(attune_table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
