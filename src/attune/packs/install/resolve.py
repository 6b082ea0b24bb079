"""Dependency resolution for an install (docs/packs.md).

Every ``dependencies`` entry of the packs being installed must be met: by a pack in the same
install, by an installed pack whose version satisfies the constraint, or by a pack fetched from a
registry (installed first). Installing must not break installed packs that depend on a replaced
one, and the ``python``/``nodejs`` minimum versions must be present. All problems are reported
together.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from attune.errors import AttuneError, BadRequest
from attune.packs.install import versions
from attune.packs.install.index import IndexEntry
from attune.packs.install.versions import Dependency, parse_dependency

T = TypeVar("T")

_VERSION = re.compile(r"(\d+(?:\.\d+){0,2})")


@dataclass
class Candidate(Generic[T]):
    """A pack taking part in the install: its ref, version, dependency entries and staged payload."""

    ref: str
    version: str
    dependencies: list[str]
    python: str | None
    nodejs: str | None
    payload: T


@dataclass
class Plan(Generic[T]):
    """Dependencies to install before the requested pack (in install order)."""

    install_first: list[Candidate[T]] = field(default_factory=list)


class DependencyError(BadRequest):
    """``Pack dependency validation failed:`` followed by one line per problem (HTTP 400)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("Pack dependency validation failed:\n" + "\n".join(f"  - {p}" for p in problems))
        self.problems = problems


async def _probe(argv: list[str]) -> str | None:
    """The ``x.y.z`` a ``--version`` command prints, or ``None`` when it cannot run."""
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
    except OSError:
        return None
    try:
        output, _ = await asyncio.wait_for(process.communicate(), 10)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        return None
    if process.returncode != 0:
        return None
    match = _VERSION.search(output.decode("utf-8", "replace"))
    return match[1] if match else None


async def detect(kind: str) -> str | None:
    """The installed Python (``python3``, else ``python``) or Node.js (``node``, else ``nodejs``)."""
    binaries = ("python3", "python") if kind == "python" else ("node", "nodejs")
    for binary in binaries:
        found = await _probe([binary, "--version"])
        if found is not None:
            return found
    return None


async def runtime_problems(candidates: list[Candidate[T]]) -> list[str]:
    """``python: "3.9"`` needs python3 ≥ 3.9, ``nodejs: "18"`` needs node ≥ 18 (docs/packs.md)."""
    problems: list[str] = []
    detected: dict[str, str | None] = {}
    for candidate in candidates:
        for kind, label, minimum in (
            ("python", "Python", candidate.python),
            ("nodejs", "Node.js", candidate.nodejs),
        ):
            if not minimum:
                continue
            if kind not in detected:
                detected[kind] = await detect(kind)
            found = detected[kind]
            if found is None:
                problems.append(
                    f"Pack '{candidate.ref}' needs {label} {minimum} or newer, which is not installed"
                )
            elif versions.compare(found, minimum) < 0:
                problems.append(f"Pack '{candidate.ref}' needs {label} {minimum} or newer (found {found})")
    return problems


def breaking(candidates: list[Candidate[T]], dependents: Mapping[str, list[tuple[str, str]]]) -> list[str]:
    """Installed packs whose dependency on a replaced pack the new version no longer meets."""
    replaced = {c.ref for c in candidates}
    problems = []
    for candidate in candidates:
        for pack_ref, entry in dependents.get(candidate.ref, []):
            if pack_ref in replaced:
                continue
            dependency = parse_dependency(entry)
            if not versions.satisfies(candidate.version, dependency.constraint):
                problems.append(
                    f"Installing {candidate.ref} {candidate.version} would break pack '{pack_ref}', "
                    f"which requires {dependency}"
                )
    return problems


async def resolve(
    root: Candidate[T],
    *,
    installed: Mapping[str, str],
    dependents: Mapping[str, list[tuple[str, str]]],
    find: Callable[[str], Awaitable[IndexEntry]] | None,
    stage: Callable[[IndexEntry], Awaitable[Candidate[T]]],
) -> Plan[T]:
    """Resolve ``root``'s dependencies; raise :class:`DependencyError` listing every problem.

    ``find`` looks a ref up in the registries (``None`` when no registry is configured); ``stage``
    fetches and parses an index entry. Dependencies found later are installed earlier.
    """
    chosen: dict[str, Candidate[T]] = {root.ref: root}
    queue: list[tuple[Dependency, str]] = [(parse_dependency(d), root.ref) for d in root.dependencies]
    fetched: list[Candidate[T]] = []
    problems: list[str] = []
    while queue:
        dependency, required_by = queue.pop(0)
        if not versions.is_valid_constraint(dependency.constraint):
            problems.append(f"Pack '{required_by}' has an invalid dependency '{dependency}'")
            continue
        if dependency.ref in chosen:
            version = chosen[dependency.ref].version
            if not versions.satisfies(version, dependency.constraint):
                problems.append(
                    f"Pack '{required_by}' requires {dependency}, but {dependency.ref} {version} "
                    "is being installed"
                )
            continue
        if dependency.ref in installed:
            version = installed[dependency.ref]
            if not versions.satisfies(version, dependency.constraint):
                problems.append(
                    f"Pack '{required_by}' requires {dependency}, but {dependency.ref} {version} is installed"
                )
            continue
        missing = f"Pack '{dependency.ref}' (required by '{required_by}') is not installed"
        if find is None:
            problems.append(f"{missing} and no pack registry is configured")
            continue
        try:
            entry = await find(dependency.ref)
        except AttuneError as exc:
            problems.append(f"{missing}: {exc.message}")
            continue
        if not versions.satisfies(entry.version, dependency.constraint):
            problems.append(
                f"{missing}; registry '{entry.registry}' offers {entry.version}, "
                f"which does not satisfy {dependency.constraint}"
            )
            continue
        try:
            candidate = await stage(entry)
        except AttuneError as exc:
            problems.append(f"{missing}; fetching it from registry '{entry.registry}' failed: {exc.message}")
            continue
        chosen[candidate.ref] = candidate
        fetched.append(candidate)
        queue.extend((parse_dependency(d), candidate.ref) for d in candidate.dependencies)
    everything = [root, *fetched]
    problems += await runtime_problems(everything)
    problems += breaking(everything, dependents)
    if problems:
        raise DependencyError(problems)
    return Plan(install_first=list(reversed(fetched)))
