"""Where an install prepares packs, how it takes turns, and how a pack directory is swapped in.

Fetching and checking happen under ``{data_dir}/pack_staging/`` (never inside the packs directory
or a source checkout). The finished pack is moved next to its final place
(``{packs_base_dir}/.incoming-…``, same filesystem) so going live is a rename; the previous
directory is kept as ``.previous-…`` until the database transaction has committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import shutil
import uuid
import weakref
from collections.abc import AsyncIterator
from pathlib import Path

from attune.packs import archive
from attune.settings import Settings

_LOCK_POLL_SECONDS = 0.1
_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()


def staging_root(settings: Settings) -> Path:
    return settings.data_dir / "pack_staging"


@contextlib.asynccontextmanager
async def install_lock(settings: Settings) -> AsyncIterator[None]:
    """One install at a time: per event loop, and across processes sharing ``data_dir``."""
    lock = _LOCKS.setdefault(asyncio.get_running_loop(), asyncio.Lock())
    async with lock:
        await asyncio.to_thread(settings.data_dir.mkdir, parents=True, exist_ok=True)
        fd = os.open(settings.data_dir / "pack_install.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    await asyncio.sleep(_LOCK_POLL_SECONDS)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


@contextlib.asynccontextmanager
async def workspace(settings: Settings) -> AsyncIterator[Path]:
    """A fresh scratch directory for one install, removed afterwards (call under the install lock)."""
    root = staging_root(settings)
    # Left-overs of an interrupted install: nobody else uses them while we hold the lock.
    await asyncio.to_thread(shutil.rmtree, root, True)
    path = root / uuid.uuid4().hex
    await asyncio.to_thread(path.mkdir, parents=True)
    try:
        yield path
    finally:
        await asyncio.to_thread(shutil.rmtree, path, True)


def bring_in(root: Path, base: Path, ref: str) -> Path:
    """Move a staged pack next to ``{base}/{ref}`` (same filesystem), ready for a rename."""
    base.mkdir(parents=True, exist_ok=True)
    incoming = base / f".incoming-{ref}-{uuid.uuid4().hex[:12]}"
    shutil.move(str(root), str(incoming))
    return incoming


def swap(incoming: Path, target: Path) -> archive.PlacedPack:
    """Put ``incoming`` at ``target``; the old directory is kept until commit or put back on rollback."""
    return archive.place_pack_dir(incoming, target, replace=True, copy=False)


def discard(path: Path | None) -> None:
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)
