"""Parsing stdout and building the stored ``execution.result`` (docs/packs.md)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
from typing import Any

import yaml

from attune.domain import safe_yaml
from attune.worker.process import ProcessOutcome

OUTPUT_FORMATS = ("text", "json", "yaml", "jsonl")

# An error from stderr quotes it whole up to this many lines, else only its last line.
_STDERR_QUOTE_LINES = 5


def parse_output(stdout: str, fmt: str) -> tuple[bool, Any]:
    """Parse ``stdout`` per ``output_format``; return ``(parsed, value)``.

    ``json``: the whole trimmed text, else its last line; ``yaml``: the whole trimmed text;
    ``jsonl``: every line that is JSON, as a list; ``text`` (or blank stdout): nothing.
    """
    text = stdout.strip()
    kind = fmt.lower()
    if not text or kind not in ("json", "yaml", "jsonl"):
        return False, None
    if kind == "json":
        for candidate in (text, text.splitlines()[-1]):
            try:
                return True, _loads(candidate)
            except ValueError:
                continue
        return False, None
    if kind == "yaml":
        try:
            return True, _json_safe(safe_yaml.load(text))
        except yaml.YAMLError:
            return False, None
    items: list[Any] = []
    for line in text.splitlines():
        try:
            items.append(_loads(line))
        except ValueError:
            continue
    return (True, items) if items else (False, None)


def build_result(
    outcome: ProcessOutcome, *, output_format: str, timeout: float | None, stderr_log: str | None
) -> tuple[str, dict[str, Any]]:
    """Map a process outcome to ``(status, result)``.

    ``status`` is ``completed`` (exit 0 and no error), ``failed``, ``timeout`` or ``cancelled``.
    ``stderr_log`` is the path of the stderr log, recorded only when stderr is not blank.
    """
    if outcome.timed_out:
        return "timeout", _failure(
            outcome, f"Execution timed out after {_seconds(timeout)} seconds", stderr_log
        )
    if outcome.cancelled:
        return "cancelled", _failure(outcome, "Execution was cancelled", stderr_log)
    error = outcome.error
    if error is None and outcome.exit_code != 0:
        error = _exit_error(outcome.stderr, outcome.exit_code)
    if error is not None:
        return "failed", _failure(outcome, error, stderr_log)

    result: dict[str, Any] = {"exit_code": 0, "duration_ms": outcome.duration_ms, "succeeded": True}
    parsed, value = parse_output(outcome.stdout, output_format)
    if not parsed and outcome.stdout:
        result["stdout"] = outcome.stdout
    if stderr_log is not None and outcome.stderr.strip():
        result["stderr_log"] = stderr_log
    if parsed:
        result["data"] = value
    return "completed", result


def early_failure(message: str) -> dict[str, Any]:
    """The result of an execution that failed before (or without) running a process."""
    return {"succeeded": False, "error": message}


def _failure(outcome: ProcessOutcome, error: str, stderr_log: str | None) -> dict[str, Any]:
    result: dict[str, Any] = {
        "succeeded": False,
        "exit_code": outcome.exit_code,
        "duration_ms": outcome.duration_ms,
        "error": error,
    }
    if outcome.stdout:
        result["stdout"] = outcome.stdout
    if stderr_log is not None and outcome.stderr.strip():
        result["stderr_log"] = stderr_log
    if outcome.stdout_truncated:
        result["stdout_truncated"] = True
        result["stdout_bytes_truncated"] = outcome.stdout_bytes_truncated
    if outcome.stderr_truncated:
        result["stderr_truncated"] = True
        result["stderr_bytes_truncated"] = outcome.stderr_bytes_truncated
    return result


def _exit_error(stderr: str, exit_code: int) -> str:
    text = stderr.strip()
    if not text:
        return f"Command exited with code {exit_code}"
    lines = text.splitlines()
    return text if len(lines) <= _STDERR_QUOTE_LINES else lines[-1].strip()


def _loads(text: str) -> Any:
    """``json.loads`` that rejects NaN and Infinity, which the result column cannot store."""
    return json.loads(text, parse_constant=_reject_constant)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _json_safe(value: Any) -> Any:
    """Turn YAML-only values (timestamps, binary, sets, non-string keys) into JSON values."""
    if isinstance(value, dict):
        return {key if isinstance(key, str) else str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set):
        return [_json_safe(item) for item in value]
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _seconds(timeout: float | None) -> str:
    if timeout is None:
        return "?"
    return str(int(timeout)) if float(timeout).is_integer() else str(timeout)
