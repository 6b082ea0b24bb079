"""Core pack action tests (unittest, standard library only).

Run from the pack root: ``python3 -m unittest tests/test_actions.py``. Parameters are delivered
on stdin in dotenv format followed by ``---ATTUNE_PARAMS_END---``, exactly as the worker does.
"""

from __future__ import annotations

import json
import subprocess
import unittest
from pathlib import Path

ACTIONS = Path(__file__).resolve().parent.parent / "actions"


def dotenv(params: dict[str, str]) -> str:
    escaped = {key: value.replace("'", "'\\''") for key, value in params.items()}
    lines = sorted(f"{key}='{value}'" for key, value in escaped.items())
    return "\n".join(lines) + "\n---ATTUNE_PARAMS_END---\n"


def run(script: str, params: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/bin/bash", str(ACTIONS / script)],
        input=dotenv(params),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


class EchoTest(unittest.TestCase):
    def test_prints_message_without_newline(self) -> None:
        result = run("echo.sh", {"message": "Hello, World!"})
        self.assertEqual(result.returncode, 0)
        self.assertEqual(result.stdout, "Hello, World!")

    def test_keeps_quotes_and_newlines(self) -> None:
        result = run("echo.sh", {"message": "it's\ntwo lines"})
        self.assertEqual(result.stdout, "it's\ntwo lines")


class NoopTest(unittest.TestCase):
    def test_exit_code(self) -> None:
        result = run("noop.sh", {"message": "x", "exit_code": "7"})
        self.assertEqual(result.returncode, 7)
        self.assertEqual(result.stdout, "[NOOP] x\nNo operation completed successfully\n")

    def test_rejects_non_numeric_code(self) -> None:
        result = run("noop.sh", {"exit_code": "abc"})
        self.assertEqual(result.returncode, 1)
        self.assertIn("exit_code", result.stderr)


class SleepTest(unittest.TestCase):
    def test_sleeps(self) -> None:
        result = run("sleep.sh", {"seconds": "0"})
        self.assertEqual(result.returncode, 0)
        self.assertEqual(result.stdout, "Slept for 0 seconds\n")

    def test_rejects_out_of_range(self) -> None:
        result = run("sleep.sh", {"seconds": "-1"})
        self.assertEqual(result.returncode, 1)


class HttpRequestTest(unittest.TestCase):
    def test_missing_url(self) -> None:
        result = run("http_request.sh", {})
        self.assertEqual(result.returncode, 1)
        output = json.loads(result.stdout)
        self.assertEqual(output["error"], "url parameter is required")
        self.assertFalse(output["success"])


if __name__ == "__main__":
    unittest.main()
