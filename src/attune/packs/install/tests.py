"""Pack tests (docs/packs.md): run a pack's declared runners and judge the result.

The same code runs ``attune pack test`` on a workstation, registration and install tests, and
``POST /api/v1/packs/{ref}/test``, so a pack behaves the same everywhere.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from attune.errors import BadRequest

_LABELS = {"total": "Total Tests:", "passed": "Passed:", "failed": "Failed:", "skipped": "Skipped:"}
_OUTPUT_LIMIT = 64 * 1024
DEFAULT_TIMEOUT = 300

#: Variables passed to tests run by the server; everything else (secrets included) stays out.
_PASSED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "USER", "LOGNAME", "SHELL")


def server_environment(pack_dir: Path, pack_ref: str) -> dict[str, str]:
    """The environment of a test run started by the server: basics only, plus the pack's location."""
    env = {key: os.environ[key] for key in _PASSED_ENV if key in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.update({"ATTUNE_PACK_DIR": str(pack_dir), "ATTUNE_PACK_REF": pack_ref, "PYTHONUNBUFFERED": "1"})
    return env


def _command(kind: str, entry: Path, python: str) -> list[str] | None:
    if kind == "script":
        return ["/bin/sh" if entry.suffix == ".sh" else "/bin/bash", str(entry)]
    if kind == "unittest":
        return [python, "-m", "unittest", str(entry)]
    if kind == "pytest":
        return [python, "-m", "pytest", str(entry), "-v"]
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


def _clip(text: str) -> str:
    return text if len(text) <= _OUTPUT_LIMIT else "…" + text[-_OUTPUT_LIMIT:]


def _run(
    command: list[str], cwd: Path, timeout: float, env: Mapping[str, str] | None
) -> tuple[int, str, str]:
    """Run in its own process group so a timeout kills every process the runner started."""
    proc = subprocess.Popen(
        command,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        env=dict(env) if env is not None else None,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode, out, err


def run_suite(
    pack_dir: Path,
    name: str,
    runner: Mapping[str, Any],
    *,
    python: str | None = None,
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """One runner: its command in the pack directory, stdin closed, within its timeout."""
    started = time.monotonic()
    kind = str(runner.get("type", ""))
    entry = pack_dir / str(runner.get("entry_point", ""))
    if not runner.get("entry_point") or not entry.is_file():
        return _error_suite(name, kind, f"Entry point not found: {runner.get('entry_point')}", started)
    if not entry.resolve().is_relative_to(pack_dir.resolve()):
        return _error_suite(
            name, kind, f"Entry point is outside the pack: {runner.get('entry_point')}", started
        )
    command = _command(kind, entry, python or sys.executable)
    if command is None:
        return _error_suite(name, kind, f"Unknown runner type: {kind}", started)
    if runner.get("result_format", "simple") != "simple":
        return _error_suite(name, kind, f"Unsupported result format: {runner.get('result_format')}", started)
    timeout = float(runner.get("timeout") or DEFAULT_TIMEOUT)
    try:
        code, stdout, stderr = _run(command, pack_dir, timeout, env)
    except subprocess.TimeoutExpired:
        return _error_suite(name, kind, f"Timed out after {timeout:g} seconds", started)
    except OSError as exc:
        return _error_suite(name, kind, f"Could not start the runner: {exc}", started)
    ms = int((time.monotonic() - started) * 1000)
    ok = code == 0
    counts = _parse_simple(stdout + "\n" + stderr)
    if counts["total"] is None or counts["passed"] is None:
        total, passed, failed, skipped = 1, int(ok), int(not ok), 0
    else:
        total, passed = counts["total"], counts["passed"]
        failed = counts["failed"] if counts["failed"] is not None else max(total - passed, 0)
        skipped = counts["skipped"] or 0
        if not ok and failed == 0:
            failed = 1  # a runner that exits non-zero never counts as all passed
    case: dict[str, Any] = {
        "name": f"{name}_suite",
        "status": "passed" if ok else "failed",
        "durationMs": ms,
        "stdout": _clip(stdout),
        "stderr": _clip(stderr),
    }
    if not ok:
        case["errorMessage"] = f"Exit code: {code}"
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


def run_pack_tests(
    pack_dir: Path,
    manifest: Mapping[str, Any],
    *,
    python: str | None = None,
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The PackTestResult (camelCase, docs/api.md) of every runner of ``manifest['testing']``.

    Blocking: servers call it through ``asyncio.to_thread``. ``python`` runs ``unittest``/``pytest``
    runners (default: this interpreter); ``env`` replaces the inherited environment.
    """
    started = time.monotonic()
    executed = datetime.now(UTC)
    runners = (manifest.get("testing") or {}).get("runners") or {}
    suites = [
        run_suite(pack_dir, str(name), dict(runner), python=python, env=env)
        for name, runner in runners.items()
        if isinstance(runner, Mapping)
    ]
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
        "passRate": min(passed / total, 1.0) if total else 0.0,
        "durationMs": int((time.monotonic() - started) * 1000),
        "testSuites": suites,
    }


@dataclass
class Verdict:
    """What a test result means for registration (docs/packs.md "When")."""

    passed: bool
    blocks: bool
    warning: str | None = None
    details: list[str] = field(default_factory=list)


def judge(result: Mapping[str, Any], testing: Mapping[str, Any], *, force: bool = False) -> Verdict:
    """Pass when ``passRate >= min_pass_rate`` (default 1.0) and nothing failed to run.

    A failure blocks with ``on_failure: block`` (the default) unless ``force``; ``warn`` registers
    with a warning, ``ignore`` silently.
    """
    minimum = float(testing.get("min_pass_rate", 1.0))
    errored = [
        f"{suite['name']}: {case.get('errorMessage')}"
        for suite in result.get("testSuites") or []
        for case in suite.get("testCases") or []
        if case.get("status") == "error"
    ]
    rate = float(result.get("passRate") or 0.0)
    total = int(result.get("totalTests") or 0)
    passed = not errored and (rate >= minimum if total else minimum <= 0)
    if passed:
        return Verdict(True, False)
    summary = (
        f"pack tests did not pass: {result.get('passed')}/{total} passed "
        f"(pass rate {rate:.0%}, minimum {minimum:.0%})"
    )
    details = errored + [
        f"{suite['name']}: {case.get('errorMessage') or case.get('status')}"
        for suite in result.get("testSuites") or []
        for case in suite.get("testCases") or []
        if case.get("status") == "failed"
    ]
    policy = str(testing.get("on_failure") or "block")
    if policy == "block" and not force:
        return Verdict(False, True, summary, details)
    return Verdict(False, False, None if policy == "ignore" else summary, details)


def enabled_testing(testing: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """The ``testing`` section when tests should run (absent or ``enabled: false`` ⇒ ``None``)."""
    if isinstance(testing, Mapping) and testing.get("enabled") is True:
        return testing
    return None


def failure_message(verdict: Verdict, result: Mapping[str, Any]) -> str:
    """The error text for a blocked registration or install: summary, failing cases, output tail."""
    lines = [verdict.warning or "pack tests did not pass", *(f"  - {d}" for d in verdict.details[:10])]
    for suite in result.get("testSuites") or []:
        for case in suite.get("testCases") or []:
            if case.get("status") in ("failed", "error"):
                output = (case.get("stderr") or "") + (case.get("stdout") or "")
                tail = [line for line in output.strip().splitlines() if line.strip()][-5:]
                lines += [f"    {line}" for line in tail]
    return "\n".join(lines)


@dataclass
class TestOutcome:
    """A judged test run, ready to be stored with the registration that follows it."""

    result: dict[str, Any]
    verdict: Verdict


def manifest_of(ref: str, version: str, testing: Mapping[str, Any]) -> dict[str, Any]:
    return {"ref": ref, "version": version, "testing": dict(testing)}


async def run_and_judge(
    ref: str,
    version: str,
    testing: Mapping[str, Any] | None,
    pack_dir: Path,
    *,
    force: bool,
    python: str | None = None,
    failure_prefix: str = "Pack registration failed",
) -> TestOutcome | None:
    """Run the tests of a pack about to be registered; ``None`` when it declares none.

    Raises :class:`~attune.errors.BadRequest` with the failing cases when the result blocks.
    """
    active = enabled_testing(testing)
    if active is None:
        return None
    result = await asyncio.to_thread(
        run_pack_tests,
        pack_dir,
        manifest_of(ref, version, active),
        python=python,
        env=server_environment(pack_dir, ref),
    )
    verdict = judge(result, active, force=force)
    if verdict.blocks:
        hint = " Use force=true to register anyway." if failure_prefix == "Pack registration failed" else ""
        raise BadRequest(f"{failure_prefix}: tests did not pass.{hint}\n{failure_message(verdict, result)}")
    return TestOutcome(result, verdict)
