"""Event rows (domain.md §2.3, §4.1) and the lookups event intake needs."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from attune.db.models import Event, Rule, Sensor, Trigger


async def get(session: AsyncSession, event_id: int) -> Event | None:
    """The event with ``event_id``, or None."""
    return await session.get(Event, event_id)


async def trigger_by_ref(session: AsyncSession, ref: str) -> Trigger | None:
    """The trigger with ``ref``, or None."""
    return (await session.execute(sa.select(Trigger).where(Trigger.ref == ref))).scalar_one_or_none()


async def rule_by_id(session: AsyncSession, rule_id: int) -> Rule | None:
    """The rule with ``rule_id``, or None."""
    return await session.get(Rule, rule_id)


async def sensor_id_by_ref(session: AsyncSession, ref: str) -> int | None:
    """The id of the sensor with ``ref``, or None."""
    sensor_id: int | None = (
        await session.execute(sa.select(Sensor.id).where(Sensor.ref == ref))
    ).scalar_one_or_none()
    return sensor_id


def list_query(
    *,
    trigger: int | None = None,
    trigger_ref: str | None = None,
    rule_ref: str | None = None,
    source: int | None = None,
) -> sa.Select[Event]:
    """Events newest first. ``trigger`` wins over ``trigger_ref``; ``rule_ref`` is a
    case-insensitive substring; ``source`` is exact."""
    query = sa.select(Event)
    if trigger is not None:
        query = query.where(Event.trigger == trigger)
    elif trigger_ref is not None:
        query = query.where(Event.trigger_ref == trigger_ref)
    if rule_ref is not None:
        query = query.where(sa.func.lower(Event.rule_ref).contains(rule_ref.lower(), autoescape=True))
    if source is not None:
        query = query.where(Event.source == source)
    return query.order_by(Event.created.desc(), Event.id.desc())


async def add(session: AsyncSession, event: Event) -> Event:
    """Insert ``event`` and flush so its id and ``created`` are set."""
    session.add(event)
    await session.flush()
    return event
