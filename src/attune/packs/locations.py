"""Where a pack's files live on this machine."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from attune.db.repos import packs
from attune.settings import Settings


def pack_directory(settings: Settings, pack_ref: str, storage_path: str | None) -> Path:
    """The directory a pack was registered from, else ``{installed_packs_dir}/{ref}`` when that
    exists, else ``{packs_base_dir}/{ref}``.

    Packs registered in place (``POST /packs/register``) keep their files where they are; installed
    and uploaded packs live under ``installed_packs_dir`` (``{data_dir}/packs``).
    """
    if storage_path:
        stored = Path(storage_path)
        if stored.is_dir():
            return stored
    installed = settings.install_dir / pack_ref
    if installed.is_dir():
        return installed
    return settings.packs_base_dir / pack_ref


async def pack_directory_of(session: AsyncSession, settings: Settings, pack_ref: str) -> Path:
    storage = await packs.storage_path(session, pack_ref)
    return pack_directory(settings, pack_ref, storage)
