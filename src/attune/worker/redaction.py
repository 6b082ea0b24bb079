"""Masking secret values in an action's output (docs/packs.md "Secrets in output").

Only real secrets are masked: values of encrypted keys and of ``secret: true`` parameters. Plain
keys are configuration, not secrets, and masking them corrupted ordinary output (a plain key
``1`` turned ``build 10 of 1001`` into asterisks). Two more rules keep the mask from eating
unrelated text:

* values shorter than :data:`MIN_SECRET_LENGTH` characters are never masked (``42``, ``yes``);
* values shorter than :data:`SUBSTRING_LENGTH` characters are masked only as whole tokens (not
  inside a longer word or number), while longer values are masked wherever they appear, so a
  real secret glued to other text (``Bearer:abcd…``) is still caught.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "********"
#: Shorter values are never masked.
MIN_SECRET_LENGTH = 4
#: Values at least this long are masked even inside longer text; shorter ones as whole tokens only.
SUBSTRING_LENGTH = 8

# A whole token: not preceded or followed by a letter, digit or underscore.
_BEFORE = rb"(?<![0-9A-Za-z_])"
_AFTER = rb"(?![0-9A-Za-z_])"


def secret_strings(secrets: Mapping[str, Any]) -> list[str]:
    """The strings to redact for a secrets map: each value, plus ``str()``/JSON forms of non-strings."""
    values: set[str] = set()
    for value in secrets.values():
        if isinstance(value, str):
            values.add(value)
            continue
        values.add(str(value))
        with contextlib.suppress(TypeError, ValueError):
            values.add(json.dumps(value, separators=(",", ":"), ensure_ascii=False))
    return sorted(v for v in values if len(v) >= MIN_SECRET_LENGTH)


class Redactor:
    """Replaces every secret occurrence with :data:`REDACTED` in one pass (longest secret first)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        needles = sorted(
            {str(s).encode() for s in secrets if len(str(s)) >= MIN_SECRET_LENGTH}, key=len, reverse=True
        )
        alternatives = [
            re.escape(n) if len(n) >= SUBSTRING_LENGTH else _BEFORE + re.escape(n) + _AFTER for n in needles
        ]
        self._pattern = re.compile(b"|".join(alternatives)) if alternatives else None
        # Bytes held back from a cut inside a long line, so a secret spanning the cut is still seen.
        self.overlap = len(needles[0]) if needles else 0

    def __call__(self, data: bytes) -> bytes:
        if self._pattern is None:
            return data
        return self._pattern.sub(REDACTED.encode(), data)
