"""``pack_environment`` rows: the environments the installer built for a pack, one per runtime."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from attune.db.models import PackEnvironment
from attune.db.types import utcnow
from attune.domain.enums import PackEnvironmentStatus


async def save_ready(session: AsyncSession, pack_id: int, pack_ref: str, values: dict[str, Any]) -> None:
    """Upsert the (pack, runtime) row as ``ready`` with ``values`` (runtime, runtime_ref, env_path, …)."""
    query = sa.select(PackEnvironment).where(
        PackEnvironment.pack == pack_id, PackEnvironment.runtime == values["runtime"]
    )
    row = (await session.execute(query)).scalar_one_or_none()
    now = utcnow()
    fields = {
        **values,
        "pack_ref": pack_ref,
        "status": PackEnvironmentStatus.READY.value,
        "installed_at": now,
        "last_verified": now,
        "install_error": None,
    }
    if row is None:
        session.add(PackEnvironment(pack=pack_id, **fields))
    else:
        for key, value in fields.items():
            setattr(row, key, value)
    await session.flush()
