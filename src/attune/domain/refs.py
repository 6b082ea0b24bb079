"""Ref and version formats shared by the API, the pack loader and the database checks.

The patterns follow docs/api.md and docs/packs.md; versions follow docs/packs.md.
"""

from __future__ import annotations

import re

PACK_REF_RE = re.compile(r"^[a-z][a-z0-9_-]+$")
"""A pack ref: lowercase, starts with a letter, at least two characters, no dot."""

COMPONENT_REF_RE = re.compile(r"^[^.]+\.[^.]+$")
"""An action/trigger/sensor/rule/runtime ref: exactly one dot (``pack.name``)."""

KEY_REF_RE = re.compile(r"^[^.]+(\.[^.]+)*$")
"""A key ref: any number of non-empty dot-separated segments."""

SEMVER_RE = re.compile(
    r"^(?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)\.(?P<patch>0|[1-9]\d*)"
    r"(?:-(?P<pre>(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)"
    r"(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+(?P<build>[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
"""Strict semantic version ``MAJOR.MINOR.PATCH[-pre][+build]`` (semver.org 2.0.0)."""


def is_pack_ref(ref: str) -> bool:
    """True when ``ref`` is a valid pack ref (``core``, ``my-pack``, ``aws_ec2``)."""
    return bool(PACK_REF_RE.fullmatch(ref))


def is_component_ref(ref: str) -> bool:
    """True when ``ref`` is lowercase with exactly one dot separating two non-empty parts."""
    return bool(COMPONENT_REF_RE.fullmatch(ref)) and ref == ref.lower()


def is_key_ref(ref: str) -> bool:
    """True when ``ref`` is lowercase with non-empty dot-separated segments."""
    return bool(KEY_REF_RE.fullmatch(ref)) and ref == ref.lower()


def is_semver(version: str) -> bool:
    """True when ``version`` is a strict semantic version."""
    return bool(SEMVER_RE.fullmatch(version))


def pack_of(ref: str) -> str:
    """The pack part of a component ref (text before the first dot)."""
    return ref.split(".", 1)[0]


def name_of(ref: str) -> str:
    """The name part of a ref (text after the last dot)."""
    return ref.rsplit(".", 1)[-1]


def label_from_name(name: str) -> str:
    """Default display label: split on ``_``, capitalise each piece, join with spaces.

    >>> label_from_name("http_request")
    'Http Request'
    """
    return " ".join(piece[:1].upper() + piece[1:] for piece in name.split("_") if piece)


def parse_version_lenient(text: str) -> tuple[int, int, int] | None:
    """Parse a runtime version leniently (docs/packs.md); ``None`` when it cannot be parsed.

    A leading ``v`` is stripped, a strict semver is accepted as is (pre-release and build are
    dropped), ``3`` and ``3.12`` are padded with zeros and only the first three parts of a longer
    dotted version are kept.
    """
    candidate = text.strip()
    if candidate[:1] in ("v", "V"):
        candidate = candidate[1:]
    match = SEMVER_RE.fullmatch(candidate)
    if match is None:
        parts = candidate.split(".")
        if len(parts) < 3:
            parts += ["0"] * (3 - len(parts))
        match = SEMVER_RE.fullmatch(".".join(parts[:3]))
    if match is None:
        return None
    return int(match["major"]), int(match["minor"]), int(match["patch"])
