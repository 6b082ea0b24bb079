"""Parameter formatting and the stdin delivery protocol (docs/packs.md).

Parameters are never put into environment variables: they reach the action on stdin (followed by
``PARAMS_END``) or in a private temp file, and secrets only ever travel as one JSON line on stdin.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

PARAMS_END = "---ATTUNE_PARAMS_END---"

FORMATS = ("json", "yaml", "dotenv")
DELIVERIES = ("stdin", "file")

# Texts that mean "no parameters": nothing is written before the delimiter for them.
_EMPTY_TEXTS = frozenset({"", "{}", "[]"})


def format_params(params: Mapping[str, Any], fmt: str) -> str:
    """Serialise ``params`` as ``json`` (compact), ``yaml`` or ``dotenv``.

    Raises ``ValueError`` for an unknown format.
    """
    kind = fmt.lower()
    if kind == "json":
        return _compact_json(dict(params))
    if kind == "yaml":
        return yaml.safe_dump(dict(params), sort_keys=False, allow_unicode=True, default_flow_style=False)
    if kind == "dotenv":
        lines = [f"{key}='{_shell_quote(value)}'" for key, value in _flatten(params, "")]
        return "\n".join(sorted(lines))
    raise ValueError(f"unknown parameter format {fmt!r}")


def build_stdin(params_text: str, *, delivery: str, secrets: Mapping[str, Any]) -> bytes:
    """Return the bytes written to the action's stdin before it is closed.

    Parameters (stdin delivery only, and only when non-empty) come first, terminated by a
    ``PARAMS_END`` line; then, if there are secrets, one line of compact JSON.
    """
    parts: list[str] = []
    if delivery.lower() == "stdin" and params_text.strip() not in _EMPTY_TEXTS:
        parts.append(f"{params_text}\n{PARAMS_END}\n")
    if secrets:
        parts.append(_compact_json(dict(secrets)) + "\n")
    return "".join(parts).encode("utf-8")


def write_param_file(params_text: str, directory: Path | None = None) -> Path:
    """Write ``params_text`` to a fresh read-only (0400) temp file and return its path.

    The file lives in ``directory`` or the system temp directory; the caller deletes it when the
    execution ends.
    """
    fd, name = tempfile.mkstemp(prefix="attune-params-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(params_text)
        os.chmod(name, 0o400)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


def _compact_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _flatten(value: Mapping[str, Any], prefix: str) -> Iterator[tuple[str, str]]:
    """Yield ``(dotted.key, text)`` for every leaf of a nested mapping."""
    for key, item in value.items():
        name = f"{prefix}{key}"
        if isinstance(item, Mapping):
            yield from _flatten(item, f"{name}.")
        else:
            yield name, scalar_text(item)


def scalar_text(value: Any) -> str:
    """A parameter as a script reads it from its environment or a dotenv file."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return json.dumps(value)
    return _compact_json(value)


def _shell_quote(text: str) -> str:
    # Inside single quotes nothing is special except the quote itself: close, escaped quote, reopen.
    return text.replace("'", "'\\''")
