"""Pack test runners and the pass/fail policy (docs/packs.md)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from attune.packs.install.tests import judge, run_pack_tests


def run(tmp_path: Path, script: str, **runner: Any) -> dict[str, Any]:
    (tmp_path / "tests").mkdir(exist_ok=True)
    (tmp_path / "tests" / "run.sh").write_text(script)
    manifest = {
        "ref": "demo",
        "version": "1.0.0",
        "testing": {
            "enabled": True,
            "runners": {"shell": {"type": "script", "entry_point": "tests/run.sh", **runner}},
        },
    }
    return run_pack_tests(tmp_path, manifest)


def test_simple_summaries_are_parsed(tmp_path: Path) -> None:
    result = run(
        tmp_path, 'echo "Total Tests: 4"; echo "Passed: 3"; echo "Failed: 1"; echo "Skipped: 0"; exit 1\n'
    )
    assert (result["status"], result["totalTests"], result["passed"], result["failed"]) == ("failed", 4, 3, 1)
    assert result["passRate"] == 0.75
    (case,) = result["testSuites"][0]["testCases"]
    assert (case["name"], case["status"], case["errorMessage"]) == ("shell_suite", "failed", "Exit code: 1")

    # A runner that exits non-zero never counts as all passed, whatever it printed.
    lying = run(tmp_path, 'echo "Total Tests: 2"; echo "Passed: 2"; exit 3\n')
    assert (lying["status"], lying["failed"]) == ("failed", 1)

    # Without a summary the suite is one test, passed by exit code.
    plain = run(tmp_path, "true\n")
    assert (plain["status"], plain["totalTests"], plain["passRate"]) == ("passed", 1, 1.0)


def test_a_timeout_kills_every_process_the_runner_started(tmp_path: Path) -> None:
    started = time.monotonic()
    # The background sleep keeps stdout open: only killing the process group ends the run.
    result = run(tmp_path, "sleep 30 &\nsleep 30\n", timeout=1)
    assert time.monotonic() - started < 10
    (case,) = result["testSuites"][0]["testCases"]
    assert (case["status"], case["errorMessage"]) == ("error", "Timed out after 1 seconds")


def test_missing_and_escaping_entry_points(tmp_path: Path) -> None:
    outside = {"enabled": True, "runners": {"x": {"type": "script", "entry_point": "../elsewhere.sh"}}}
    (tmp_path / "pack").mkdir()
    (tmp_path / "elsewhere.sh").write_text("true\n")
    result = run_pack_tests(tmp_path / "pack", {"ref": "demo", "testing": outside})
    assert (
        result["testSuites"][0]["testCases"][0]["errorMessage"]
        == "Entry point is outside the pack: ../elsewhere.sh"
    )
    missing = {"enabled": True, "runners": {"x": {"type": "pytest", "entry_point": "tests/nope.py"}}}
    result = run_pack_tests(tmp_path / "pack", {"ref": "demo", "testing": missing})
    assert result["testSuites"][0]["testCases"][0]["errorMessage"] == "Entry point not found: tests/nope.py"
    assert (result["status"], result["failed"], result["totalTests"]) == ("failed", 1, 0)


def _result(passed: int, total: int) -> dict[str, Any]:
    return {"passed": passed, "totalTests": total, "passRate": passed / total, "testSuites": []}


@pytest.mark.parametrize(
    ("testing", "force", "passed", "blocks", "warns"),
    [
        ({}, False, False, True, True),  # default: min_pass_rate 1.0, on_failure block
        ({}, True, False, False, True),  # force always registers
        ({"min_pass_rate": 0.5}, False, True, False, False),
        ({"on_failure": "warn"}, False, False, False, True),
        ({"on_failure": "ignore"}, False, False, False, False),
    ],
)
def test_pass_policy(testing: dict[str, Any], force: bool, passed: bool, blocks: bool, warns: bool) -> None:
    verdict = judge(_result(1, 2), testing, force=force)
    assert (verdict.passed, verdict.blocks, verdict.warning is not None) == (passed, blocks, warns)
    if warns:
        assert verdict.warning == "pack tests did not pass: 1/2 passed (pass rate 50%, minimum 100%)"
