"""Event rows (docs/development.md) and the lookups event intake needs."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from attune.db.models import Event, Rule, Sensor, Trigger
from attune.db.outbox import enqueue
from attune.db.repos import by_pk, locking
from attune.messaging.messages import MessageType


async def get(session: AsyncSession, event_id: int) -> Event | None:
    """The event with ``event_id``, or None."""
    return await by_pk.get(session, Event, event_id)


async def get_locked(session: AsyncSession, event_id: int) -> Event | None:
    """The event, locked for the transaction where the database can (one rule evaluation at a time)."""
    return await locking.get_locked(session, Event, event_id)


async def enabled_rules_of_trigger(session: AsyncSession, trigger_ref: str) -> Sequence[Rule]:
    """Every enabled rule of the trigger ref, by rule ref."""
    return (await session.execute(_enabled_rules_query(), {"trigger_ref": trigger_ref})).scalars().all()


@functools.cache
def _enabled_rules_query() -> sa.Select[Rule]:
    # Built once: statements on a run's path cost more to build (and key) than to run.
    return (
        sa.select(Rule)
        .where(Rule.enabled.is_(True), Rule.trigger_ref == sa.bindparam("trigger_ref"))
        .order_by(Rule.ref)
    )


async def trigger_by_ref(session: AsyncSession, ref: str) -> Trigger | None:
    """The trigger with ``ref``, or None."""
    return (await session.execute(sa.select(Trigger).where(Trigger.ref == ref))).scalar_one_or_none()


async def rule_by_id(session: AsyncSession, rule_id: int) -> Rule | None:
    """The rule with ``rule_id``, or None."""
    return await by_pk.get(session, Rule, rule_id)


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


def event_created_payload(event: Event) -> dict[str, Any]:
    """The ``EventCreated`` message body for ``event``."""
    # The message carries objects only: a null (or non-object) payload travels as {} and the
    # consumer reads the row for anything else.
    return {
        "event_id": event.id,
        "trigger_id": event.trigger,
        "trigger_ref": event.trigger_ref,
        "sensor_id": event.source,
        "sensor_ref": event.source_ref,
        "payload": event.payload if isinstance(event.payload, dict) else {},
        "config": event.config if isinstance(event.config, dict) else None,
    }


async def create_event(
    session: AsyncSession,
    trigger: Trigger,
    *,
    payload: Any,
    config: Any = None,
    source: int | None = None,
    source_ref: str | None = None,
    rule: Rule | None = None,
    created: datetime | None = None,
    source_service: str,
) -> Event:
    """Insert one firing of ``trigger`` and stage ``EventCreated`` in the same transaction.

    THE way to record an event (API intake, webhooks, the sensor service's timers). A ``rule``
    binds the event to that rule only (docs/operations.md). The caller owns the transaction.
    """
    event = Event(
        trigger=trigger.id,
        trigger_ref=trigger.ref,
        payload=payload,
        config=config,
        source=source,
        source_ref=source_ref,
        rule=rule.id if rule is not None else None,
        rule_ref=rule.ref if rule is not None else None,
    )
    if created is not None:
        event.created = created
    await add(session, event)
    enqueue(session, MessageType.EVENT_CREATED, event_created_payload(event), source_service=source_service)
    return event
