"""Identity rows: users, sensors and execution-scoped service identities."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from attune.db.models import Identity


async def get(session: AsyncSession, identity_id: int) -> Identity | None:
    return await session.get(Identity, identity_id)


async def token_version(session: AsyncSession, identity_id: int) -> int | None:
    """The identity's token version (bumped when its tokens must die); None when it is gone."""
    version = await session.scalar(sa.select(Identity.token_version).where(Identity.id == identity_id))
    return None if version is None else int(version)


async def by_login(session: AsyncSession, login: str) -> Identity | None:
    result = await session.execute(sa.select(Identity).where(Identity.login == login))
    return result.scalar_one_or_none()


async def create(
    session: AsyncSession,
    login: str,
    *,
    password_hash: str | None,
    display_name: str | None,
    attributes: dict[str, Any] | None = None,
    is_admin: bool = False,
) -> Identity:
    identity = Identity(
        login=login,
        display_name=display_name,
        password_hash=password_hash,
        attributes=attributes or {},
        is_admin=is_admin,
    )
    session.add(identity)
    await session.flush()
    return identity


def list_query(*, humans_only: bool = True) -> sa.Select[Identity]:
    """Identities by login; ``humans_only`` leaves out sensor identities (they have no password)."""
    query = sa.select(Identity)
    if humans_only:
        query = query.where(sa.not_(Identity.login.startswith("sensor:")))
    return query.order_by(Identity.login.asc())


async def delete(session: AsyncSession, identity: Identity) -> None:
    await session.delete(identity)
    await session.flush()


async def admin_count(session: AsyncSession) -> int:
    """How many identities carry ``is_admin``."""
    count = await session.scalar(sa.select(sa.func.count()).select_from(Identity).where(Identity.is_admin))
    return int(count or 0)


async def sensor_identity(session: AsyncSession, sensor_ref: str, trigger_types: list[str]) -> Identity:
    """Find or create the identity ``sensor:<sensor_ref>`` that sensor tokens are issued for.

    Its attributes record the trigger types of the latest token (docs/api.md).
    """
    login = f"sensor:{sensor_ref}"
    attributes = {"type": "sensor", "sensor_ref": sensor_ref, "trigger_types": list(trigger_types)}
    identity = await by_login(session, login)
    if identity is None:
        return await create(
            session, login, password_hash=None, display_name=f"Sensor: {sensor_ref}", attributes=attributes
        )
    identity.attributes = attributes
    return identity


async def set_password(session: AsyncSession, identity: Identity, password_hash: str) -> None:
    """Store a new password hash and bump ``token_version``: tokens issued before stop working."""
    identity.password_hash = password_hash
    identity.token_version = (identity.token_version or 0) + 1
    await session.flush()
