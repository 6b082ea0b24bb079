"""Run a pack's declared tests on this machine (packs.md §15), for ``attune pack test``."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

_LABELS = {"total": "Total Tests:", "passed": "Passed:", "failed": "Failed:", "skipped": "Skipped:"}


def _command(kind: str, entry: Path) -> list[str] | None:
    if kind == "script":
        return ["/bin/sh" if entry.suffix == ".sh" else "/bin/bash", str(entry)]
    if kind == "unittest":
        return [sys.executable, "-m", "unittest", str(entry)]
    if kind == "pytest":
        return [sys.executable, "-m", "pytest", str(entry), "-v"]
    return None


def _parse_simple(output: str) -> dict[str, int | None]:
    counts: dict[str, int | None] = {}
    for key, label in _LABELS.items():
        match = re.search(re.escape(label) + r"\s*(\d+)", output)
        counts[key] = int(match.group(1)) if match else None
    return counts


def _error_suite(name: str, kind: str, message: str, started: float) -> dict[str, Any]:
    ms = int((time.monotonic() - started) * 1000)
    return {
        "name": name,
        "runnerType": kind,
        "total": 0,
        "passed": 0,
        "failed": 1,
        "skipped": 0,
        "durationMs": ms,
        "testCases": [
            {"name": f"{name}_execution", "status": "error", "durationMs": ms, "errorMessage": message}
        ],
    }


def run_suite(pack_dir: Path, name: str, runner: dict[str, Any]) -> dict[str, Any]:
    """One runner: its command in the pack directory, stdin closed, with its timeout."""
    started = time.monotonic()
    kind = str(runner.get("type", ""))
    entry = pack_dir / str(runner.get("entry_point", ""))
    if not runner.get("entry_point") or not entry.is_file():
        return _error_suite(name, kind, f"Entry point not found: {runner.get('entry_point')}", started)
    command = _command(kind, entry)
    if command is None:
        return _error_suite(name, kind, f"Unknown runner type: {kind}", started)
    if runner.get("result_format", "simple") != "simple":
        return _error_suite(name, kind, f"Unsupported result format: {runner.get('result_format')}", started)
    timeout = float(runner.get("timeout") or 300)
    try:
        proc = subprocess.run(
            command, cwd=pack_dir, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return _error_suite(name, kind, f"Timed out after {timeout:g} seconds", started)
    except OSError as exc:
        return _error_suite(name, kind, f"Could not start the runner: {exc}", started)
    ms = int((time.monotonic() - started) * 1000)
    ok = proc.returncode == 0
    counts = _parse_simple(proc.stdout + "\n" + proc.stderr)
    if counts["total"] is None or counts["passed"] is None:
        total, passed, failed, skipped = 1, int(ok), int(not ok), 0
    else:
        total, passed = counts["total"], counts["passed"]
        failed = counts["failed"] if counts["failed"] is not None else max(total - passed, 0)
        skipped = counts["skipped"] or 0
    case: dict[str, Any] = {
        "name": f"{name}_suite",
        "status": "passed" if ok else "failed",
        "durationMs": ms,
        "stdout": proc.stdout,
        "stderr": proc.stderr,
    }
    if not ok:
        case["errorMessage"] = f"Exit code: {proc.returncode}"
    return {
        "name": name,
        "runnerType": kind,
        "total": total,
        "passed": passed,
        "failed": failed,
        "skipped": skipped,
        "durationMs": ms,
        "testCases": [case],
    }


def run_pack_tests(pack_dir: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """The PackTestResult (camelCase, api.md §4.1) of every runner of ``manifest['testing']``."""
    started = time.monotonic()
    executed = datetime.now(UTC)
    runners = (manifest.get("testing") or {}).get("runners") or {}
    suites = [run_suite(pack_dir, str(name), dict(runner)) for name, runner in runners.items()]
    total = sum(s["total"] for s in suites)
    passed = sum(s["passed"] for s in suites)
    failed = sum(s["failed"] for s in suites)
    skipped = sum(s["skipped"] for s in suites)
    if failed:
        status = "failed"
    elif passed == total:
        status = "passed"
    elif skipped == total:
        status = "skipped"
    else:
        status = "partial"
    return {
        "packRef": manifest.get("ref"),
        "packVersion": str(manifest.get("version") or "unknown"),
        "executionTime": executed.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "status": status,
        "totalTests": total,
        "passed": passed,
        "failed": failed,
        "skipped": skipped,
        "passRate": passed / total if total else 0.0,
        "durationMs": int((time.monotonic() - started) * 1000),
        "testSuites": suites,
    }
