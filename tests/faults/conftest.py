"""Fault tests (docs/operations.md "Guarantees"): real processes, ``kill -9`` and restarts.

Every test here is ``slow``; the scaled ones run in the PostgreSQL + RabbitMQ pass.
"""

from __future__ import annotations

import pytest

from tests.faults.harness import REPORTED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Repeat every fault test's tally line at the end of the run (a passing test's output is
    captured, and CI's log is where operators read what the guarantees were measured at)."""
    if REPORTED:
        terminalreporter.section("fault tests: accepted / completed / failed / lost / duplicated / stuck")
        for line in REPORTED:
            terminalreporter.write_line(line)
