"""Pack versions and dependency constraints (docs/packs.md).

A dependency is ``ref`` or ``ref@constraint``. A constraint is ``*``, ``=X``, ``>X``, ``>=X``, ``<X``,
``<=X``, ``^X`` (same major; same minor when the major is 0; same patch when both are 0), ``~X``
(same major.minor) or a bare version meaning exactly ``X``. Several constraints separated by spaces
or commas must all hold. Versions compare numerically on up to three dot-separated integers
(missing parts are 0; a leading ``v`` and any pre-release or build suffix are ignored).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

Version = tuple[int, int, int]

_NUMERIC = re.compile(r"^[vV]?(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:[-+.].*)?$")
_CLAUSE = re.compile(r"^(>=|<=|>|<|=|\^|~)?\s*(.+)$")


@dataclass(frozen=True)
class Dependency:
    """One ``dependencies`` entry: the pack ref and its constraint (``*`` when none was given)."""

    ref: str
    constraint: str

    def __str__(self) -> str:
        return self.ref if self.constraint == "*" else f"{self.ref}@{self.constraint}"


def parse_dependency(text: str) -> Dependency:
    ref, _, constraint = text.partition("@")
    return Dependency(ref.strip(), constraint.strip() or "*")


def parse_version(text: str) -> Version | None:
    """(major, minor, patch) of a version string, or ``None`` when it does not start with a number."""
    match = _NUMERIC.match(text.strip())
    if not match:
        return None
    return int(match[1]), int(match[2] or 0), int(match[3] or 0)


def _clause_holds(version: Version, clause: str) -> bool | None:
    if clause == "*":
        return True
    match = _CLAUSE.match(clause)
    bound = parse_version(match[2]) if match else None
    if match is None or bound is None:
        return None
    op = match[1] or ""
    if op == ">":
        return version > bound
    if op == ">=":
        return version >= bound
    if op == "<":
        return version < bound
    if op == "<=":
        return version <= bound
    if op in ("=", ""):
        return version == bound
    if op == "~":
        return version >= bound and version[:2] == bound[:2]
    # ^: the left-most non-zero part is fixed.
    if version < bound:
        return False
    if bound[0] > 0:
        return version[0] == bound[0]
    if bound[1] > 0:
        return version[:2] == bound[:2]
    return version == bound


def is_valid_constraint(constraint: str) -> bool:
    return all(_clause_holds((0, 0, 0), clause) is not None for clause in _clauses(constraint))


def _clauses(constraint: str) -> list[str]:
    # ">= 1.2" is one clause: whitespace after an operator is not a separator.
    normalised = re.sub(r"(>=|<=|>|<|=|\^|~)\s+", r"\1", constraint.strip())
    return [part for part in re.split(r"[\s,]+", normalised) if part] or ["*"]


def satisfies(version: str, constraint: str) -> bool:
    """Whether ``version`` meets ``constraint``; an unparseable version or constraint never does."""
    parsed = parse_version(version)
    if parsed is None:
        return False
    return all(_clause_holds(parsed, clause) is True for clause in _clauses(constraint))


def compare(left: str, right: str) -> int:
    """-1, 0 or 1 comparing two versions numerically (unparseable versions sort first)."""
    a, b = parse_version(left) or (-1, -1, -1), parse_version(right) or (-1, -1, -1)
    return (a > b) - (a < b)
