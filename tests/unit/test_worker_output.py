"""Parsing stdout and the stored result (docs/packs.md)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from attune.worker.output import build_result, early_failure, parse_output
from attune.worker.process import ProcessOutcome

LOG = "/artifacts/execution_7/stderr.log"


def outcome(**changes: Any) -> ProcessOutcome:
    base = ProcessOutcome(
        exit_code=0,
        stdout="",
        stderr="",
        stdout_truncated=False,
        stdout_bytes_truncated=0,
        stderr_truncated=False,
        stderr_bytes_truncated=0,
        duration_ms=42,
        timed_out=False,
        cancelled=False,
        error=None,
    )
    return dataclasses.replace(base, **changes)


@pytest.mark.parametrize(
    ("stdout", "fmt", "expected"),
    [
        ('{"a": 1}', "json", (True, {"a": 1})),
        ("  [1, 2]\n", "JSON", (True, [1, 2])),
        ('starting\nworking\n{"ok": true}\n', "json", (True, {"ok": True})),
        ("not json\nstill not", "json", (False, None)),
        ("NaN", "json", (False, None)),
        ("a: 1\nb: [x, y]\n", "yaml", (True, {"a": 1, "b": ["x", "y"]})),
        ("when: 2024-01-02\n", "yaml", (True, {"when": "2024-01-02"})),
        ("a: [unclosed", "yaml", (False, None)),
        ('{"n": 1}\nnoise\n{"n": 2}\n', "jsonl", (True, [{"n": 1}, {"n": 2}])),
        ("noise\nmore noise", "jsonl", (False, None)),
        ('{"a": 1}', "text", (False, None)),
        ("   \n", "json", (False, None)),
    ],
)
def test_parse_output(stdout: str, fmt: str, expected: tuple[bool, Any]) -> None:
    assert parse_output(stdout, fmt) == expected


def test_success_with_parsed_output_drops_stdout() -> None:
    status, result = build_result(
        outcome(stdout='{"x": 1}\n', stderr="warning\n"), output_format="json", timeout=30, stderr_log=LOG
    )
    assert status == "completed"
    assert result == {
        "exit_code": 0,
        "duration_ms": 42,
        "succeeded": True,
        "stderr_log": LOG,
        "data": {"x": 1},
    }


def test_success_as_text_keeps_stdout_and_omits_blank_stderr() -> None:
    status, result = build_result(
        outcome(stdout="hello\n", stderr="  \n"), output_format="text", timeout=30, stderr_log=LOG
    )
    assert status == "completed"
    assert result == {"exit_code": 0, "duration_ms": 42, "succeeded": True, "stdout": "hello\n"}


def test_success_never_carries_truncation_fields() -> None:
    _, result = build_result(
        outcome(stdout="x", stdout_truncated=True, stdout_bytes_truncated=9),
        output_format="text",
        timeout=None,
        stderr_log=None,
    )
    assert "stdout_truncated" not in result and "stdout_bytes_truncated" not in result


def test_failure_quotes_short_stderr_whole() -> None:
    status, result = build_result(
        outcome(exit_code=2, stdout="partial\n", stderr="line1\nline2\n"),
        output_format="json",
        timeout=30,
        stderr_log=LOG,
    )
    assert status == "failed"
    assert result == {
        "succeeded": False,
        "exit_code": 2,
        "duration_ms": 42,
        "error": "line1\nline2",
        "stdout": "partial\n",
        "stderr_log": LOG,
    }


def test_failure_with_five_stderr_lines_quotes_all() -> None:
    stderr = "\n".join(f"l{i}" for i in range(5))
    _, result = build_result(
        outcome(exit_code=1, stderr=stderr), output_format="text", timeout=1, stderr_log=None
    )
    assert result["error"] == stderr


def test_failure_with_long_stderr_quotes_last_line() -> None:
    stderr = "\n".join(f"l{i}" for i in range(6)) + "\n"
    _, result = build_result(
        outcome(exit_code=1, stderr=stderr), output_format="text", timeout=1, stderr_log=None
    )
    assert result["error"] == "l5"


def test_failure_without_stderr_names_the_exit_code() -> None:
    _, result = build_result(outcome(exit_code=7), output_format="text", timeout=1, stderr_log=LOG)
    assert result == {
        "succeeded": False,
        "exit_code": 7,
        "duration_ms": 42,
        "error": "Command exited with code 7",
    }


def test_failure_reports_truncation_only_when_it_happened() -> None:
    _, result = build_result(
        outcome(exit_code=1, stdout="x", stdout_truncated=True, stdout_bytes_truncated=123),
        output_format="text",
        timeout=1,
        stderr_log=None,
    )
    assert result["stdout_truncated"] is True
    assert result["stdout_bytes_truncated"] == 123
    assert "stderr_truncated" not in result and "stderr_bytes_truncated" not in result


def test_process_error_fails_even_with_exit_zero() -> None:
    status, result = build_result(
        outcome(error="Failed to write to stdin: broken pipe", stderr="oops"),
        output_format="text",
        timeout=1,
        stderr_log=None,
    )
    assert status == "failed"
    assert result["error"] == "Failed to write to stdin: broken pipe"


def test_timeout_result() -> None:
    status, result = build_result(
        outcome(exit_code=-1, stdout="started\n", timed_out=True),
        output_format="json",
        timeout=30,
        stderr_log=LOG,
    )
    assert status == "timeout"
    assert result == {
        "succeeded": False,
        "exit_code": -1,
        "duration_ms": 42,
        "error": "Execution timed out after 30 seconds",
        "stdout": "started\n",
    }


def test_fractional_timeout_is_printed_as_given() -> None:
    _, result = build_result(
        outcome(exit_code=-1, timed_out=True), output_format="text", timeout=0.5, stderr_log=None
    )
    assert result["error"] == "Execution timed out after 0.5 seconds"


def test_cancelled_result() -> None:
    status, result = build_result(
        outcome(exit_code=-1, cancelled=True, stderr="bye\n"),
        output_format="text",
        timeout=30,
        stderr_log=LOG,
    )
    assert status == "cancelled"
    assert result == {
        "succeeded": False,
        "exit_code": -1,
        "duration_ms": 42,
        "error": "Execution was cancelled",
        "stderr_log": LOG,
    }


def test_early_failure() -> None:
    assert early_failure("Runtime 'x' not found") == {"succeeded": False, "error": "Runtime 'x' not found"}
