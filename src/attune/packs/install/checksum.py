"""Pack checksums (docs/packs.md): the deterministic directory checksum and ``algorithm:hex`` values."""

from __future__ import annotations

import hashlib
from pathlib import Path

from attune.errors import BadRequest

ALGORITHMS = ("sha256", "sha512", "sha1", "md5")

#: Version-control data never counts towards a pack's checksum.
_SKIPPED_TOP_LEVEL = frozenset({".git"})


def directory_checksum(root: Path, algorithm: str = "sha256", *, exclude_git: bool = True) -> str:
    """Hash every regular file: its path relative to ``root`` (UTF-8) then its bytes.

    Depth-first, entries of each directory sorted by name; symbolic links are skipped. Lower-case hex.
    """
    digest = hashlib.new(algorithm)

    def walk(directory: Path) -> None:
        for entry in sorted(directory.iterdir(), key=lambda p: p.name):
            if exclude_git and directory == root and entry.name in _SKIPPED_TOP_LEVEL:
                continue
            if entry.is_symlink():
                continue
            if entry.is_dir():
                walk(entry)
            elif entry.is_file():
                digest.update(entry.relative_to(root).as_posix().encode("utf-8"))
                with entry.open("rb") as handle:
                    for block in iter(lambda: handle.read(1 << 20), b""):
                        digest.update(block)

    walk(root)
    return digest.hexdigest()


def file_checksum(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes."""
    digest = hashlib.new(algorithm)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def parse_checksum(value: str) -> tuple[str, str]:
    """``algorithm:hex`` → (algorithm, hex), both lower-case; a bare hex string means sha256."""
    text = value.strip()
    algorithm, sep, digest = text.partition(":")
    if not sep:
        algorithm, digest = "sha256", text
    algorithm, digest = algorithm.strip().lower(), digest.strip().lower()
    if algorithm not in ALGORITHMS:
        raise BadRequest(f"Unsupported checksum algorithm '{algorithm}' (use one of {', '.join(ALGORITHMS)})")
    if not digest or any(c not in "0123456789abcdef" for c in digest):
        raise BadRequest(f"Invalid checksum '{value}': expected {algorithm}:<hex>")
    return algorithm, digest


def matches(expected: str, pack_root: Path, archive: Path | None = None) -> tuple[bool, str]:
    """Whether ``expected`` is the pack's directory checksum (or the archive file's hash).

    Returns (matched, actual) with ``actual`` formatted ``algorithm:hex`` (the directory checksum),
    for error messages.
    """
    algorithm, digest = parse_checksum(expected)
    actual = directory_checksum(pack_root, algorithm)
    if actual == digest:
        return True, f"{algorithm}:{actual}"
    # `attune pack checksum <file>` hashes an archive's bytes; accept that form for archive sources.
    if archive is not None and file_checksum(archive, algorithm) == digest:
        return True, f"{algorithm}:{actual}"
    return False, f"{algorithm}:{actual}"
