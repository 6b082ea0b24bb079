"""Attune beside n8n in one sitting: W1–W4 on both, interleaved, one side-by-side table.

Every workload runs on a freshly started server of each peer, one peer at a time (the other is
stopped), and the order alternates from one workload to the next (Attune first, then n8n first,
…) so that both see the same machine load; the 1-minute load average at the start and end of
every run is in the table. Idle RSS is the median over every fresh start of that peer. Attune runs
embedded with default settings; n8n as described in ``n8n_driver``. Definitions and method:
docs/performance.md.

    export ATTUNE_BENCH_N8N_HOME=/path/with/node_modules/n8n ATTUNE_BENCH_N8N_NODE=/path/to/node24
    .venv/bin/python bench/compare.py --n8n-setup      # once: import and publish n8n's workflows
    .venv/bin/python bench/compare.py [--only w1,w2,w3,w4,py] [--json results.json]

``make bench-compare`` runs the second line.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from datetime import datetime
from typing import Any

from measure import loadavg, machine
from n8n_driver import N8nBench, N8nInstall, N8nServer, N8nUnavailable
from report import attune_table, compare_table
from run import add_common_arguments, git_revision, header, run_workload, selected, start_attune

N8N_SETTLE_S = 5.0  # after readiness, before idle RSS


def run_attune(name: str, args: argparse.Namespace, results: dict[str, Any]) -> None:
    deployment, bench = start_attune(args)
    try:
        results["idle_samples"].append(bench.idle())
        results[name] = run_workload(bench, name, args)
        if name == "w1" and "py" in selected(args):
            print("… attune py", file=sys.stderr, flush=True)
            results["py"] = bench.py()
    finally:
        deployment.stop()


def run_n8n(name: str, args: argparse.Namespace, install: N8nInstall, results: dict[str, Any]) -> None:
    server = N8nServer(install).start()
    try:
        time.sleep(N8N_SETTLE_S)
        bench = N8nBench(server)
        results["idle_samples"].append(bench.idle())
        results[name] = bench.w2(duration=args.w2_duration) if name == "w2" else getattr(bench, name)()
    finally:
        server.stop()


def summarise_idle(results: dict[str, Any]) -> None:
    samples = results["idle_samples"]
    if samples:
        results["idle"] = {
            "idle_tree_rss_mib": statistics.median(s["idle_tree_rss_mib"] for s in samples),
            "processes": samples[0]["processes"],
            "load_1m": samples[0]["load_1m"],
        }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_common_arguments(parser)
    parser.add_argument(
        "--n8n-setup", action="store_true", help="import and publish n8n's workflows, then exit"
    )
    parser.add_argument("--first", choices=["attune", "n8n"], default="attune", help="who runs W1 first")
    args = parser.parse_args()
    try:
        install = N8nInstall.from_env()
        if args.n8n_setup:
            install.setup()
            print(f"n8n {install.version}: workflows imported and published in {install.data}")
            return
        install.check_workflows()
    except N8nUnavailable as exc:
        raise SystemExit(f"bench/compare.py: {exc}") from None
    names = selected(args)
    started = datetime.now().astimezone()
    load_start = loadavg()
    attune: dict[str, Any] = {"idle_samples": []}
    n8n: dict[str, Any] = {"idle_samples": [], "version": install.version}
    for i, name in enumerate(n for n in names if n != "py"):
        attune_first = (i % 2 == 0) == (args.first == "attune")
        for peer in ("attune", "n8n") if attune_first else ("n8n", "attune"):
            print(f"… {peer} {name}", file=sys.stderr, flush=True)
            if peer == "attune":
                run_attune(name, args, attune)
            else:
                run_n8n(name, args, install, n8n)
    summarise_idle(attune)
    summarise_idle(n8n)
    load_end = loadavg()
    node = subprocess.run([install.node, "--version"], capture_output=True, text=True).stdout.strip()
    print(
        header(
            f"Attune beside n8n {install.version}",
            [
                f"{started:%Y-%m-%d %H:%M %Z}, Attune revision {git_revision()}, embedded, default settings",
                f"{platform.node()}: {machine()}, Python {platform.python_version()}, Node.js {node}",
                f"load average (1/5/15 min) at start {load_start}, at end {load_end}",
                "each workload on a fresh server of each peer, one peer at a time, order alternating",
                f"Attune completion: {args.completion} (n8n answers the webhook after the run)",
            ],
        )
    )
    print(compare_table(attune, n8n))
    print()
    print(attune_table(attune))
    if args.json:
        meta = {"started": started.isoformat(), "loadavg_start": load_start, "loadavg_end": load_end}
        args.json.write_text(json.dumps({"meta": meta, "attune": attune, "n8n": n8n}, indent=1))


if __name__ == "__main__":
    main()
