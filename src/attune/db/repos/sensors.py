"""Sensor rows."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from attune.db.models import Runtime, Sensor


async def by_ref(session: AsyncSession, ref: str) -> Sensor | None:
    """The sensor with this ref, or None."""
    return (await session.execute(sa.select(Sensor).where(Sensor.ref == ref))).scalar_one_or_none()


def list_query(
    *, pack_id: int | None = None, trigger_id: int | None = None, enabled: bool | None = None
) -> sa.Select[Any]:
    """Sensors ordered by ref, optionally filtered by pack, trigger and enabled flag."""
    query = sa.select(Sensor).order_by(Sensor.ref, Sensor.id)
    if pack_id is not None:
        query = query.where(Sensor.pack == pack_id)
    if trigger_id is not None:
        query = query.where(Sensor.trigger == trigger_id)
    if enabled is not None:
        query = query.where(Sensor.enabled == enabled)
    return query


async def create(session: AsyncSession, **values: Any) -> Sensor:
    """Insert a sensor and return it with its id and timestamps."""
    sensor = Sensor(**values)
    session.add(sensor)
    await session.flush()
    return sensor


async def delete(session: AsyncSession, sensor: Sensor) -> None:
    """Delete a sensor: its keys cascade and ``event.source`` becomes NULL."""
    await session.execute(sa.delete(Sensor).where(Sensor.id == sensor.id))


async def enabled_with_runtimes(session: AsyncSession, *, exclude_ref: str) -> list[tuple[Sensor, Runtime]]:
    """Enabled sensors (except ``exclude_ref``) with their runtime rows, by sensor id."""
    query = (
        sa.select(Sensor, Runtime)
        .join(Runtime, Sensor.runtime == Runtime.id)
        .where(Sensor.enabled.is_(True), Sensor.ref != exclude_ref)
        .order_by(Sensor.id)
    )
    return [(sensor, row) for sensor, row in (await session.execute(query)).all()]
