"""Pack files on disk: safe extraction of uploaded archives and placing packs under packs_base_dir.

An uploaded ``.tar.gz`` is untrusted input. Every member is checked before anything is written:
absolute names, ``..`` segments, links that leave the archive, device files and FIFOs are refused,
and the uncompressed size and member count are bounded, so a hostile archive can neither write
outside the extraction directory nor fill the disk.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import shutil
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from attune.errors import BadRequest

log = logging.getLogger(__name__)

MAX_UNPACKED_BYTES = 512 * 1024 * 1024
"""Upper bound on the total uncompressed size of an uploaded pack."""

MAX_MEMBERS = 20_000
"""Upper bound on the number of entries in an uploaded pack."""

#: Entries that archivers add next to the real content; ignored when looking for the pack root.
_IGNORED_TOP_LEVEL = frozenset({"__MACOSX", ".DS_Store"})


class ArchiveError(BadRequest):
    """The archive is unreadable or unsafe (HTTP 400)."""


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


def copy_stream(source: BinaryIO, target: Path, *, max_bytes: int) -> str:
    """Copy ``source`` into ``target`` and return its hex SHA-256; refuse more than ``max_bytes``."""
    digest = hashlib.sha256()
    written = 0
    with target.open("wb") as out:
        for chunk in iter(lambda: source.read(1024 * 1024), b""):
            written += len(chunk)
            if written > max_bytes:
                raise ArchiveError(f"Pack archive is larger than {max_bytes} bytes")
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def _member_path(name: str) -> PurePosixPath:
    """The member's normalised relative path; refuses absolute names and ``..`` segments."""
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise ArchiveError(f"Unsafe pack archive: absolute path '{name}'")
    path = PurePosixPath(name.replace("\\", "/"))
    if ".." in path.parts:
        raise ArchiveError(f"Unsafe pack archive: path '{name}' leaves the archive")
    return PurePosixPath(*[part for part in path.parts if part not in ("", ".")])


def _check_link(member: tarfile.TarInfo, path: PurePosixPath) -> None:
    """Links must point at something inside the archive."""
    target = member.linkname.replace("\\", "/")
    if target.startswith("/"):
        raise ArchiveError(f"Unsafe pack archive: link '{member.name}' points outside the archive")
    # Symlinks resolve relative to their own directory, hard links relative to the archive root.
    base = path.parent.parts if member.issym() else ()
    depth = list(base)
    for part in PurePosixPath(target).parts:
        if part in ("", "."):
            continue
        if part == "..":
            if not depth:
                raise ArchiveError(f"Unsafe pack archive: link '{member.name}' points outside the archive")
            depth.pop()
        else:
            depth.append(part)


def check_members(members: list[tarfile.TarInfo], *, max_bytes: int, max_members: int) -> None:
    """Validate every member of an archive before extraction; raise :class:`ArchiveError`."""
    if len(members) > max_members:
        raise ArchiveError(f"Pack archive has more than {max_members} entries")
    total = 0
    for member in members:
        path = _member_path(member.name)
        if member.ischr() or member.isblk() or member.isfifo() or member.isdev():
            raise ArchiveError(f"Unsafe pack archive: '{member.name}' is a device or FIFO")
        if member.issym() or member.islnk():
            _check_link(member, path)
        elif not (member.isfile() or member.isdir()):
            raise ArchiveError(f"Unsafe pack archive: unsupported entry type for '{member.name}'")
        total += max(member.size, 0)
        if total > max_bytes:
            raise ArchiveError(f"Pack archive expands to more than {max_bytes} bytes")


def extract_archive(
    archive: Path,
    destination: Path,
    *,
    max_bytes: int = MAX_UNPACKED_BYTES,
    max_members: int = MAX_MEMBERS,
) -> None:
    """Extract a (gzip-compressed) tar archive into the existing directory ``destination``."""
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            members = tar.getmembers()
            check_members(members, max_bytes=max_bytes, max_members=max_members)
            # The "data" filter re-checks paths and links and drops setuid bits and ownership.
            tar.extractall(destination, members=members, filter="data")
    except ArchiveError:
        raise
    except tarfile.FilterError as exc:
        raise ArchiveError(f"Unsafe pack archive: {exc}") from exc
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        raise ArchiveError(f"Invalid pack archive: not a readable .tar.gz file ({exc})") from exc


def find_pack_root(extracted: Path) -> Path:
    """The directory holding ``pack.yaml``: the archive root or its single top-level directory."""
    if (extracted / "pack.yaml").is_file():
        return extracted
    entries = [
        p for p in extracted.iterdir() if p.name not in _IGNORED_TOP_LEVEL and not p.name.startswith("._")
    ]
    directories = [p for p in entries if p.is_dir() and not p.is_symlink()]
    if len(entries) == 1 and len(directories) == 1 and (directories[0] / "pack.yaml").is_file():
        return directories[0]
    raise ArchiveError(
        "Invalid pack archive: pack.yaml must be at the archive root or inside a single top-level directory"
    )


@contextlib.contextmanager
def staging_dir(base: Path) -> Iterator[Path]:
    """A fresh scratch directory inside ``base`` (same filesystem, so moves are renames); removed at exit."""
    base.mkdir(parents=True, exist_ok=True)
    path = base / f".staging-{uuid.uuid4().hex}"
    path.mkdir()
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class PlacedPack:
    """A pack directory moved to ``{packs_base_dir}/{ref}``; the previous one is kept until commit.

    Call :meth:`commit` once the pack is registered (drops the previous copy) or :meth:`rollback`
    when registration failed (restores the previous copy, or removes the new directory).
    """

    def __init__(self, target: Path, backup: Path | None) -> None:
        self.target = target
        self._backup = backup

    def commit(self) -> None:
        if self._backup is not None:
            shutil.rmtree(self._backup, ignore_errors=True)
            self._backup = None

    def rollback(self) -> None:
        shutil.rmtree(self.target, ignore_errors=True)
        if self._backup is not None:
            self._backup.rename(self.target)
            self._backup = None


def place_pack_dir(source: Path, target: Path, *, replace: bool, copy: bool) -> PlacedPack:
    """Move (or copy) the pack directory ``source`` to ``target``.

    An existing ``target`` is set aside when ``replace`` is true (else :class:`FileExistsError`),
    so a failed registration can put it back.
    """
    backup: Path | None = None
    if target.exists() or target.is_symlink():
        if not replace:
            raise FileExistsError(str(target))
        backup = target.with_name(f".previous-{target.name}-{uuid.uuid4().hex}")
        target.rename(backup)
    try:
        if copy:
            shutil.copytree(source, target, symlinks=True)
        else:
            shutil.move(str(source), str(target))
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        if backup is not None:
            backup.rename(target)
        raise
    return PlacedPack(target, backup)


def remove_tree(path: Path) -> None:
    """Best-effort recursive delete; failures are only logged (docs/packs.md)."""
    if not path.exists() and not path.is_symlink():
        return
    try:
        if path.is_symlink() or path.is_file():
            path.unlink()
        else:
            shutil.rmtree(path)
    except OSError as exc:
        log.warning("could not remove pack directory %s: %s", path, exc)
