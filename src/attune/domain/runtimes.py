"""Runtime names (docs/packs.md, runners): compare them lower-cased and alias-normalised.

One alias table serves both uses: comparing runtime names (a worker's ``capabilities.runtimes``
against an action's runtime) and resolving an action's ``runner_type`` to a core runtime ref.
"""

from __future__ import annotations

#: Runner-type and runtime-name aliases (matched lower-cased) and the runtime name each stands for.
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

#: The core pack's runtime ref for each canonical runtime name.
CORE_RUNTIME_REFS = {
    "shell": "core.shell",
    "python": "core.python",
    "node": "core.nodejs",
    "native": "core.native",
}


def canonical_runtime_name(name: str) -> str:
    """``Node.js`` → ``node``, ``python3`` → ``python``, ``bash`` → ``shell``; others lower-cased."""
    lowered = name.strip().lower()
    return RUNTIME_ALIASES.get(lowered, lowered)


def is_runner_alias(runner_type: str) -> bool:
    """Whether ``runner_type`` is one of the known aliases (``Bash``, ``python3``, ...)."""
    return runner_type.strip().lower() in RUNTIME_ALIASES


def resolve_runner(runner_type: str) -> str:
    """The runtime ref for a runner type: a core runtime for known aliases, else the raw value."""
    canonical = RUNTIME_ALIASES.get(runner_type.strip().lower())
    return CORE_RUNTIME_REFS[canonical] if canonical is not None else runner_type.strip()


def alias_equal(a: str, b: str) -> bool:
    return canonical_runtime_name(a) == canonical_runtime_name(b)
