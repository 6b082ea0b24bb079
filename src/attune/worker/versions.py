"""Runtime versions: lenient parsing, constraints, selection and verification.

Constraint semantics follow docs/packs.md: node-semver (npm) comparators applied after Attune's own
padding rules (a bare ``3`` means 3.0.x, ``>3`` means ``>3.0.0``). Python's ``packaging.specifiers``
differs on both counts, so the table is implemented here explicitly.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Version = tuple[int, int, int, str | None]

_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)
# Lenient form: 1+ numeric parts, then an optional pre-release and build suffix.
_LENIENT = re.compile(r"^(\d+(?:\.\d+)*)(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z.-]+)?$")
_CLAUSE = re.compile(r"^(>=|<=|>|<|=|~|\^)?(.+)$")
_DEFAULT_PRIORITY = 999


def parse_version(text: str) -> Version | None:
    """Parse a version leniently (docs/packs.md); ``None`` when it is not a version.

    A leading ``v``/``V`` is stripped, ``3`` pads to ``3.0.0`` and ``3.12`` to ``3.12.0``; with four
    or more numeric parts the first three are kept. The pre-release tag (``rc1`` in ``3.13.0-rc1``)
    is kept; build metadata is dropped.
    """
    candidate = text.strip()
    if candidate[:1] in ("v", "V"):
        candidate = candidate[1:]
    strict = _SEMVER.match(candidate)
    if strict:
        return int(strict[1]), int(strict[2]), int(strict[3]), strict[4]
    lenient = _LENIENT.match(candidate)
    if not lenient:
        return None
    parts = [int(part) for part in lenient[1].split(".")][:3]
    parts += [0] * (3 - len(parts))
    return parts[0], parts[1], parts[2], lenient[2]


def _compare_prerelease(left: str | None, right: str | None) -> int:
    # A release sorts after any of its pre-releases (semver §11).
    if left == right:
        return 0
    if left is None:
        return 1
    if right is None:
        return -1
    left_ids, right_ids = left.split("."), right.split(".")
    for a, b in zip(left_ids, right_ids, strict=False):
        if a == b:
            continue
        if a.isdigit() and b.isdigit():
            return -1 if int(a) < int(b) else 1
        if a.isdigit() != b.isdigit():
            return -1 if a.isdigit() else 1  # numeric identifiers sort before alphanumeric ones
        return -1 if a < b else 1
    # All shared identifiers equal: the longer list sorts higher.
    return (len(left_ids) > len(right_ids)) - (len(left_ids) < len(right_ids))


def compare_versions(left: Version, right: Version) -> int:
    """Semver precedence of two parsed versions: -1, 0 or 1."""
    if left[:3] != right[:3]:
        return -1 if left[:3] < right[:3] else 1
    return _compare_prerelease(left[3], right[3])


@dataclass(frozen=True)
class _Comparator:
    op: str  # one of > >= < <= =
    version: Version
    user_named: bool  # written by the user (not a derived upper bound): counts for the pre-release gate

    def test(self, version: Version) -> bool:
        order = compare_versions(version, self.version)
        return {
            ">": order > 0,
            ">=": order >= 0,
            "<": order < 0,
            "<=": order <= 0,
            "=": order == 0,
        }[self.op]


def _clause_comparators(clause: str) -> list[_Comparator] | None:
    """Translate one clause of a version constraint (docs/packs.md "Runtime versions") into
    comparators; ``None`` when invalid."""
    if clause == "*":
        return []
    match = _CLAUSE.match(clause)
    if not match:
        return None
    op, text = match[1], match[2]
    version = parse_version(text)
    if version is None:
        return None
    major, minor, patch, _pre = version
    lower = _Comparator(">=", version, True)
    if op in (">", ">=", "<", "<=", "="):
        return [_Comparator(op, version, True)]
    if op == "^":
        if major > 0:
            upper: Version = (major + 1, 0, 0, None)
        elif minor > 0:
            upper = (0, minor + 1, 0, None)
        else:
            upper = (0, 0, patch + 1, None)
        return [lower, _Comparator("<", upper, False)]
    # Bare versions and ``~`` are tilde ranges after padding: >=X.Y.Z, <X.(Y+1).0.
    return [lower, _Comparator("<", (major, minor + 1, 0, None), False)]


def _parse_constraint(constraint: str) -> list[_Comparator] | None:
    comparators: list[_Comparator] = []
    for part in constraint.split(","):
        # Whitespace after an operator is ignored (">= 3.12" is ">=3.12"); any other whitespace
        # separates further ANDed comparators, as in node-semver (">=3.8 <4").
        normalised = re.sub(r"(>=|<=|>|<|=|~|\^)\s+", r"\1", part.strip())
        for clause in normalised.split():
            parsed = _clause_comparators(clause)
            if parsed is None:
                return None
            comparators.extend(parsed)
    return comparators


def is_valid_constraint(constraint: str | None) -> bool:
    """Whether ``constraint`` parses under docs/packs.md (empty and ``None`` are valid)."""
    return constraint is None or not constraint.strip() or _parse_constraint(constraint) is not None


def matches_constraint(version: str, constraint: str | None) -> bool:
    """Whether ``version`` satisfies ``constraint`` (docs/packs.md).

    Empty or ``None`` matches everything; an invalid constraint or version matches nothing. A
    pre-release matches only if a clause names the same ``major.minor.patch`` with a pre-release tag.
    """
    if constraint is None or not constraint.strip():
        return True
    comparators = _parse_constraint(constraint)
    parsed = parse_version(version)
    if comparators is None or parsed is None:
        return False
    if not all(comparator.test(parsed) for comparator in comparators):
        return False
    if parsed[3] is None:
        return True
    return any(c.user_named and c.version[3] is not None and c.version[:3] == parsed[:3] for c in comparators)


@dataclass(frozen=True)
class VersionChoice:
    """The selected runtime version and the execution_config that replaces the runtime's."""

    version: str
    execution_config: dict[str, Any]
    distributions: Mapping[str, Any] = field(default_factory=dict)


def _choice(row: Mapping[str, Any]) -> VersionChoice:
    config = row.get("execution_config")
    distributions = row.get("distributions")
    return VersionChoice(
        str(row["version"]),
        dict(config) if isinstance(config, Mapping) else {},
        distributions if isinstance(distributions, Mapping) else {},
    )


def _highest(rows: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    best: tuple[Version, Mapping[str, Any]] | None = None
    for row in rows:
        parsed = parse_version(str(row.get("version", "")))
        if parsed is not None and (best is None or compare_versions(parsed, best[0]) > 0):
            best = (parsed, row)
    return best[1] if best else None


def select_version(versions: Sequence[Mapping[str, Any]], constraint: str | None) -> VersionChoice | None:
    """Pick the runtime version for an execution (docs/packs.md).

    ``versions`` are rows with ``version``, ``available``, ``is_default`` and ``execution_config``.
    Only available rows count. With a constraint: the highest matching version (an invalid constraint
    selects nothing). Without one: the default row, else the highest parseable version. ``None`` means
    fall back to the runtime's own config.
    """
    available = [row for row in versions if bool(row.get("available")) and row.get("version")]
    if constraint is not None and constraint.strip():
        if _parse_constraint(constraint) is None:
            return None
        matching = [row for row in available if matches_constraint(str(row["version"]), constraint)]
        best = _highest(matching)
        return _choice(best) if best is not None else None
    for row in available:
        if bool(row.get("is_default")):
            return _choice(row)
    best = _highest(available)
    return _choice(best) if best is not None else None


async def _run_check(argv: list[str], seconds: float) -> tuple[int, str] | None:
    """Run ``argv`` and return (exit code, stdout+stderr); ``None`` if it cannot start or times out."""
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
    except OSError:
        return None
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), seconds)
    except TimeoutError:
        return None
    finally:
        if process.returncode is None:
            # Its own session: kill the whole group so a hung check leaves nothing behind.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
    output = stdout.decode("utf-8", "replace") + stderr.decode("utf-8", "replace")
    return process.returncode if process.returncode is not None else -1, output


def _as_args(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Sequence):
        return [str(item) for item in value]
    return []


async def _command_passes(command: Mapping[str, Any], seconds: float) -> bool:
    binary = str(command.get("binary") or "").strip()
    if not binary:
        return False
    result = await _run_check([binary, *_as_args(command.get("args"))], seconds)
    if result is None:
        return False
    exit_code, output = result
    expected = command.get("exit_code")
    if exit_code != (0 if expected is None else expected):
        return False
    pattern = command.get("pattern")
    if not pattern:
        return True
    try:
        return re.search(str(pattern), output) is not None
    except re.error:
        return False


def _priority(command: Mapping[str, Any]) -> float:
    value = command.get("priority")
    return (
        float(value) if isinstance(value, int | float) and not isinstance(value, bool) else _DEFAULT_PRIORITY
    )


async def verify_commands(
    distributions: Mapping[str, Any],
    *,
    fallback_binary: str | None,
    timeout: float = 10,  # noqa: ASYNC109 - a per-command limit, not a limit on the whole call
) -> bool:
    """Check that a runtime (version) is installed on this host (docs/packs.md).

    ``always_available: true`` or ``check_required: false`` pass without running anything. Otherwise
    the verification commands run in ascending ``priority`` (default 999, file order on ties), each
    with ``timeout`` seconds; the first whose exit code and optional ``pattern`` (searched in stdout
    followed by stderr) match makes it available. Without commands: ``<fallback_binary> --version``
    must exit 0, and with no binary either the runtime is assumed available.
    """
    available, _ = await check_commands(distributions, fallback_binary=fallback_binary, timeout=timeout)
    return available


async def check_commands(
    distributions: Mapping[str, Any],
    *,
    fallback_binary: str | None,
    timeout: float = 10,  # noqa: ASYNC109 - a per-command limit, not a limit on the whole call
) -> tuple[bool, str | None]:
    """:func:`verify_commands`, plus the binary of the command that passed (None when nothing ran).

    That binary is the one to run the version with when its configured interpreter is missing:
    ``node --version`` printing ``v20.…`` proves that ``node`` is Node.js 20 even where no
    ``node20`` exists.
    """
    verification = distributions.get("verification") if isinstance(distributions, Mapping) else None
    if not isinstance(verification, Mapping):
        verification = {}
    if verification.get("always_available") is True or verification.get("check_required") is False:
        return True, None
    raw_commands = verification.get("commands")
    commands = [c for c in raw_commands if isinstance(c, Mapping)] if isinstance(raw_commands, list) else []
    if commands:
        commands.sort(key=_priority)
        for command in commands:
            if await _command_passes(command, timeout):
                return True, str(command.get("binary")).strip()
        return False, None
    if fallback_binary and fallback_binary.strip():
        binary = fallback_binary.strip()
        passed = await _command_passes({"binary": binary, "args": ["--version"]}, timeout)
        return passed, binary if passed else None
    return True, None
