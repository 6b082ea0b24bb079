"""Runtime version parsing, constraints (docs/packs.md), selection and verification."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest

from attune.worker.versions import matches_constraint, parse_version, select_version, verify_commands


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3", (3, 0, 0, None)),
        ("3.12", (3, 12, 0, None)),
        ("v3.12.1", (3, 12, 1, None)),
        (" V20 ", (20, 0, 0, None)),
        ("3.12.1.4", (3, 12, 1, None)),
        ("3.13.0-rc1", (3, 13, 0, "rc1")),
        ("3.13-rc.2", (3, 13, 0, "rc.2")),
        ("1.2.3+build.5", (1, 2, 3, None)),
        ("", None),
        ("latest", None),
        ("3.x", None),
        ("1..2", None),
    ],
)
def test_parse_version_is_lenient(text: str, expected: tuple[int, int, int, str | None] | None) -> None:
    assert parse_version(text) == expected


CONSTRAINT_CASES = [
    # bare X.Y is ~X.Y
    ("3.12", "3.12.0", True),
    ("3.12", "3.12.9", True),
    ("3.12", "3.13.0", False),
    ("3.12", "3.11.9", False),
    ("v3.12", "3.12.4", True),
    # bare X is ~X.0: only X.0.x
    ("3", "3.0.7", True),
    ("3", "3.1.0", False),
    ("20", "20.0.1", True),
    ("20", "20.11.0", False),
    # bare X.Y.Z is ~X.Y.Z, not exact
    ("3.12.1", "3.12.1", True),
    ("3.12.1", "3.12.5", True),
    ("3.12.1", "3.12.0", False),
    ("3.12.1", "3.13.0", False),
    # operators, padded
    (">=3.12", "3.12.0", True),
    (">=3.12", "4.1.0", True),
    (">=3.12", "3.11.9", False),
    (">3", "3.0.1", True),
    (">3", "3.0.0", False),
    ("<3.12", "3.11.99", True),
    ("<3.12", "3.12.0", False),
    ("<=3.12", "3.12.0", True),
    ("<=3.12", "3.12.1", False),
    ("=3.12", "3.12.0", True),
    ("=3.12", "3.12.1", False),
    (">= 3.12", "3.12.3", True),
    # tilde
    ("~3", "3.0.4", True),
    ("~3", "3.1.0", False),
    ("~3.12", "3.12.8", True),
    ("~3.12", "3.13.0", False),
    ("~3.12.2", "3.12.2", True),
    ("~3.12.2", "3.12.1", False),
    ("~3.12.2", "3.13.0", False),
    # caret, including the 0.x rules
    ("^3.12", "3.99.0", True),
    ("^3.12", "3.11.0", False),
    ("^3.12", "4.0.0", False),
    ("^3", "3.0.0", True),
    ("^0.2.3", "0.2.9", True),
    ("^0.2.3", "0.3.0", False),
    ("^0.2.3", "0.2.2", False),
    ("^0.0.3", "0.0.3", True),
    ("^0.0.3", "0.0.4", False),
    ("^0.0.3", "0.0.2", False),
    # star and empty
    ("*", "0.0.1", True),
    ("*", "99.1.2", True),
    ("", "1.2.3", True),
    ("   ", "1.2.3", True),
    # comma is AND
    (">=3.8, <3.12", "3.11.4", True),
    (">=3.8, <3.12", "3.12.0", False),
    (">=3.8, <3.12", "3.7.0", False),
    (">=18,<22", "20.1.0", True),
    ("^3, !3.9", "3.10.0", False),  # one invalid clause makes the whole constraint invalid
    # pre-releases match only when a clause names the same major.minor.patch with a pre-release
    (">=3.12", "3.13.0-rc1", False),
    ("*", "3.13.0-rc1", False),
    ("~3.13", "3.13.0-rc1", False),
    (">=3.13.0-rc1", "3.13.0-rc1", True),
    (">=3.13.0-rc1", "3.13.0-rc2", True),
    (">=3.13.0-rc1", "3.13.0-beta", False),
    (">=3.13.0-rc1", "3.14.0-rc1", False),
    (">=3.13.0-rc1", "3.13.0", True),
    ("^1.2.3-beta.2", "1.2.3-beta.10", True),
    ("^1.2.3-beta.2", "2.0.0-alpha", False),
    ("<3.13.0-rc1", "3.13.0-beta", True),
    # invalid constraints match nothing
    ("latest", "3.12.0", False),
    (">=", "3.12.0", False),
    ("3.12 || 3.13", "3.12.0", False),
    (">=x", "1.0.0", False),
    ("=>3", "3.0.0", False),
]


@pytest.mark.parametrize(("constraint", "version", "expected"), CONSTRAINT_CASES)
def test_constraint_table(constraint: str, version: str, expected: bool) -> None:
    assert matches_constraint(version, constraint) is expected


def test_none_constraint_matches_anything_and_bad_versions_match_nothing() -> None:
    assert matches_constraint("3.12", None)
    assert matches_constraint("3.13.0-rc1", None)
    assert not matches_constraint("not-a-version", ">=1")


def test_versions_are_padded_before_matching() -> None:
    assert matches_constraint("3.12", "=3.12.0")
    assert matches_constraint("v20", "^20")


def row(version: str, *, available: bool = True, default: bool = False) -> dict[str, Any]:
    return {
        "version": version,
        "available": available,
        "is_default": default,
        "execution_config": {"interpreter": {"binary": f"python{version}"}},
    }


def test_selection_prefers_the_default_without_a_constraint() -> None:
    choice = select_version([row("3.11"), row("3.12", default=True), row("3.13")], None)
    assert choice is not None
    assert choice.version == "3.12"
    assert choice.execution_config == {"interpreter": {"binary": "python3.12"}}


def test_selection_takes_the_highest_when_there_is_no_default() -> None:
    choice = select_version([row("3.9"), row("3.13"), row("3.11"), row("garbage")], "")
    assert choice is not None and choice.version == "3.13"


def test_unavailable_versions_are_never_selected() -> None:
    rows = [row("3.11"), row("3.12", default=True, available=False), row("3.13", available=False)]
    choice = select_version(rows, None)
    assert choice is not None and choice.version == "3.11"
    assert select_version([row("3.13", available=False)], None) is None
    assert select_version([row("3.13", available=False)], ">=3") is None


def test_constraint_picks_the_highest_match_even_over_the_default() -> None:
    rows = [row("3.11"), row("3.12", default=True), row("3.13"), row("4.0")]
    choice = select_version(rows, ">=3.11, <4")
    assert choice is not None and choice.version == "3.13"
    choice = select_version(rows, "3.11")
    assert choice is not None and choice.version == "3.11"


def test_semver_order_not_string_order() -> None:
    choice = select_version([row("3.9"), row("3.10")], "^3")
    assert choice is not None and choice.version == "3.10"


def test_no_match_or_invalid_constraint_selects_nothing() -> None:
    rows = [row("3.11"), row("3.12", default=True)]
    assert select_version(rows, "^4") is None
    assert select_version(rows, "latest") is None
    assert select_version([], None) is None


# --- verification with real commands -------------------------------------------------------------


def sh(script: str, **extra: Any) -> dict[str, Any]:
    return {"binary": "sh", "args": ["-c", script], **extra}


async def test_always_available_and_check_not_required_run_nothing() -> None:
    failing = [{"binary": "/nonexistent/binary"}]
    assert await verify_commands(
        {"verification": {"always_available": True, "commands": failing}}, fallback_binary=None
    )
    assert await verify_commands(
        {"verification": {"check_required": False, "commands": failing}}, fallback_binary=None
    )


async def test_a_command_passes_on_its_exit_code() -> None:
    assert await verify_commands({"verification": {"commands": [sh("exit 0")]}}, fallback_binary=None)
    assert not await verify_commands({"verification": {"commands": [sh("exit 1")]}}, fallback_binary=None)
    assert await verify_commands(
        {"verification": {"commands": [sh("exit 3", exit_code=3)]}}, fallback_binary=None
    )


async def test_pattern_is_searched_in_stdout_then_stderr() -> None:
    ok = sh("echo 'Python 3.12.4' >&2", pattern=r"Python 3\.12\.")
    wrong = sh("echo 'Python 3.11.9'", pattern=r"Python 3\.12\.")
    assert await verify_commands({"verification": {"commands": [ok]}}, fallback_binary=None)
    assert not await verify_commands({"verification": {"commands": [wrong]}}, fallback_binary=None)


async def test_commands_run_in_priority_order_until_one_passes(tmp_path: Path) -> None:
    trace = tmp_path / "trace"
    commands = [
        sh(f"echo third >> {trace}; exit 0", priority=30),
        sh(f"echo first >> {trace}; exit 1", priority=1),
        sh(f"echo second >> {trace}; exit 0", priority=2),
    ]
    assert await verify_commands({"verification": {"commands": commands}}, fallback_binary=None)
    assert trace.read_text().split() == ["first", "second"]


async def test_a_missing_binary_fails_and_the_next_command_is_tried() -> None:
    commands = [
        {"binary": "/nonexistent/attune-runtime", "args": ["--version"], "priority": 1},
        sh("echo v20.1.0", pattern=r"v20\.", priority=2),
    ]
    assert await verify_commands({"verification": {"commands": commands}}, fallback_binary=None)


async def test_a_hung_check_times_out_as_a_failure() -> None:
    started = time.monotonic()
    passed = await verify_commands(
        {"verification": {"commands": [sh("sleep 5; exit 0")]}}, fallback_binary=None, timeout=0.3
    )
    assert not passed
    assert time.monotonic() - started < 3


async def test_without_commands_the_interpreter_is_asked_for_its_version(tmp_path: Path) -> None:
    fails_version = tmp_path / "broken-python"
    fails_version.write_text("#!/bin/sh\nexit 1\n")
    fails_version.chmod(0o755)
    no_commands: dict[str, Any] = {"verification": {"commands": []}}
    assert await verify_commands(no_commands, fallback_binary=sys.executable)
    assert not await verify_commands(no_commands, fallback_binary=str(fails_version))
    assert not await verify_commands({}, fallback_binary="/nonexistent/python9")


async def test_without_commands_or_binary_the_version_is_assumed_available() -> None:
    assert await verify_commands({}, fallback_binary=None)
    assert await verify_commands({"verification": {}}, fallback_binary="")
