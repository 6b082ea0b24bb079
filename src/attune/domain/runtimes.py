"""Runtime names (domain.md §10.4): compare them lower-cased and alias-normalised."""

from __future__ import annotations

RUNTIME_ALIASES = {
    "node": "node",
    "nodejs": "node",
    "node.js": "node",
    "python": "python",
    "python3": "python",
    "bash": "shell",
    "sh": "shell",
    "shell": "shell",
    "native": "native",
    "builtin": "native",
    "standalone": "native",
}


def canonical_runtime_name(name: str) -> str:
    """``Node.js`` → ``node``, ``python3`` → ``python``, ``bash`` → ``shell``; others lower-cased."""
    lowered = name.strip().lower()
    return RUNTIME_ALIASES.get(lowered, lowered)


def alias_equal(a: str, b: str) -> bool:
    return canonical_runtime_name(a) == canonical_runtime_name(b)
