"""Pack dependency constraints (docs/packs.md)."""

from __future__ import annotations

import pytest

from attune.packs.install.versions import compare, is_valid_constraint, parse_dependency, satisfies


@pytest.mark.parametrize(
    ("version", "constraint", "expected"),
    [
        ("1.2.3", "*", True),
        ("1.2.3", "1.2.3", True),
        ("1.2.4", "1.2.3", False),  # a bare version means exactly that version
        ("1.2.3", "=1.2.3", True),
        ("1.3.0", ">1.2.3", True),
        ("1.2.3", ">1.2.3", False),
        ("1.2.3", ">=1.2.3", True),
        ("1.2.2", ">=1.2.3", False),
        ("1.2.2", "<1.2.3", True),
        ("1.2.3", "<=1.2", False),  # missing parts are 0
        ("1.9.0", "^1.2", True),
        ("2.0.0", "^1.2", False),
        ("1.1.9", "^1.2", False),
        ("0.3.9", "^0.3.1", True),  # major 0: same minor
        ("0.4.0", "^0.3.1", False),
        ("0.0.3", "^0.0.3", True),  # both 0: same patch
        ("0.0.4", "^0.0.3", False),
        ("1.2.9", "~1.2.3", True),
        ("1.3.0", "~1.2.3", False),
        ("1.2.2", "~1.2.3", False),
        ("2.1.0", ">=2.0 <3", True),  # several constraints must all hold
        ("3.0.0", ">= 2.0, <3", False),
        ("v1.4.0-beta.1", "^1.0", True),  # numeric parts only
        ("banana", "*", False),
        ("1.0.0", "^banana", False),
    ],
)
def test_constraints(version: str, constraint: str, expected: bool) -> None:
    assert satisfies(version, constraint) is expected


def test_dependency_entries_and_comparison() -> None:
    dependency = parse_dependency("utils@^1.2")
    assert (dependency.ref, dependency.constraint) == ("utils", "^1.2")
    assert str(parse_dependency("slack")) == "slack" and parse_dependency("slack").constraint == "*"
    assert not is_valid_constraint(">=x") and is_valid_constraint("~1.2")
    assert compare("1.10.0", "1.9.9") == 1 and compare("2.0", "2.0.0") == 0 and compare("0.9", "1") == -1
