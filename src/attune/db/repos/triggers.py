"""Trigger rows, their webhook operations (domain.md §2.3) and the events webhooks record."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from attune.db.models import Event, Trigger

WEBHOOK_KEY_PREFIX = "wh_"


def new_webhook_key() -> str:
    """``wh_`` + 32 lowercase hex characters (16 random bytes)."""
    return WEBHOOK_KEY_PREFIX + secrets.token_hex(16)


async def by_ref(session: AsyncSession, ref: str) -> Trigger | None:
    """The trigger with this ref, or None."""
    return (await session.execute(sa.select(Trigger).where(Trigger.ref == ref))).scalar_one_or_none()


async def by_webhook_key(session: AsyncSession, key: str) -> Trigger | None:
    """The trigger owning this webhook key, or None."""
    query = sa.select(Trigger).where(Trigger.webhook_key == key)
    return (await session.execute(query)).scalar_one_or_none()


def list_query(*, pack_id: int | None = None, enabled: bool | None = None) -> sa.Select[Any]:
    """Triggers ordered by ref, optionally filtered by pack and enabled flag."""
    query = sa.select(Trigger).order_by(Trigger.ref, Trigger.id)
    if pack_id is not None:
        query = query.where(Trigger.pack == pack_id)
    if enabled is not None:
        query = query.where(Trigger.enabled == enabled)
    return query


async def create(session: AsyncSession, **values: Any) -> Trigger:
    """Insert a trigger and return it with its id and timestamps."""
    trigger = Trigger(**values)
    session.add(trigger)
    await session.flush()
    return trigger


async def delete(session: AsyncSession, trigger: Trigger) -> None:
    """Delete a trigger: its sensors cascade; rules and events keep the ref with the id nulled."""
    await session.execute(sa.delete(Trigger).where(Trigger.id == trigger.id))


def enable_webhooks(trigger: Trigger) -> None:
    """Keep or generate the key, set ``webhook_enabled`` and reset ``webhook_config`` to ``{}``."""
    if not trigger.webhook_key:
        trigger.webhook_key = new_webhook_key()
    trigger.webhook_enabled = True
    trigger.webhook_config = {}


def disable_webhooks(trigger: Trigger) -> None:
    """Turn webhooks off and clear the key, so the old URL stops working."""
    trigger.webhook_enabled = False
    trigger.webhook_key = None


def regenerate_webhook_key(trigger: Trigger) -> bool:
    """Store a new key; return whether a previous key was revoked. Callers check enablement."""
    revoked = trigger.webhook_key is not None
    trigger.webhook_key = new_webhook_key()
    return revoked


async def record_event(
    session: AsyncSession,
    trigger: Trigger,
    *,
    payload: Any,
    config: dict[str, Any],
    source_ref: str,
    created: datetime,
) -> Event:
    """Insert an event of ``trigger`` (no emitting sensor, no target rule)."""
    event = Event(
        trigger=trigger.id,
        trigger_ref=trigger.ref,
        payload=payload,
        config=config,
        source=None,
        source_ref=source_ref,
        rule=None,
        rule_ref=None,
        created=created,
    )
    session.add(event)
    await session.flush()
    return event
