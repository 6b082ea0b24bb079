"""Trigger rows, their webhook operations (docs/development.md) and the webhook event window."""

from __future__ import annotations

import functools
import secrets
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from attune.db.models import Event, Rule, Trigger

WEBHOOK_KEY_PREFIX = "wh_"
#: ``event.source_ref`` of events recorded by the webhook receiver.
WEBHOOK_SOURCE = "webhook"


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


async def by_webhook_key_with_rules(session: AsyncSession, key: str) -> tuple[Trigger | None, int]:
    """The trigger owning this webhook key (or None) and how many enabled rules listen to it, in
    one statement (a waiting webhook needs both; docs/webhooks.md)."""
    row = (await session.execute(_webhook_key_with_rules_query(), {"key": key})).first()
    return (None, 0) if row is None else (row[0], int(row[1] or 0))


@functools.cache
def _webhook_key_with_rules_query() -> sa.Select[Any]:
    # Built once: statements on a run's path cost more to build (and key) than to run.
    rules = (
        sa.select(sa.func.count())
        .select_from(Rule)
        .where(Rule.trigger_ref == Trigger.ref, Rule.enabled.is_(True))
        .scalar_subquery()
    )
    return sa.select(Trigger, rules).where(Trigger.webhook_key == sa.bindparam("key"))


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
    """Keep or generate the key and set ``webhook_enabled``.

    The security configuration is kept (docs/api.md reset it to ``{}``, silently dropping HMAC,
    allow-list and limits whenever webhooks were re-enabled).
    """
    if not trigger.webhook_key:
        trigger.webhook_key = new_webhook_key()
    trigger.webhook_enabled = True
    if trigger.webhook_config is None:
        trigger.webhook_config = {}


def disable_webhooks(trigger: Trigger) -> None:
    """Turn webhooks off and clear the key, so the old URL stops working (config is kept)."""
    trigger.webhook_enabled = False
    trigger.webhook_key = None


def regenerate_webhook_key(trigger: Trigger) -> bool:
    """Store a new key; return whether a previous key was revoked. Callers check enablement."""
    revoked = trigger.webhook_key is not None
    trigger.webhook_key = new_webhook_key()
    return revoked


async def lock_for_webhook(session: AsyncSession, trigger_id: int) -> Trigger | None:
    """The trigger, locked for the rest of the write transaction (PostgreSQL ``FOR UPDATE``).

    Webhook receivers of one trigger take turns on this lock, so counting the rate-limit window
    and inserting the event are one atomic step. SQLite needs no row lock: its write
    transactions (``BEGIN IMMEDIATE``) already run one at a time.
    """
    sqlite = session.get_bind().dialect.name == "sqlite"
    return await session.get(Trigger, trigger_id, with_for_update=not sqlite, populate_existing=True)


async def webhook_window(
    session: AsyncSession, trigger: Trigger, since: datetime, limit: int
) -> tuple[int, datetime | None]:
    """Webhook events of ``trigger`` created after ``since``: their count and, when there are at
    least ``limit``, the creation time of the event whose expiry frees a slot.

    Rate limiting counts these rows, so every API process of a deployment shares one window.
    """
    recent = (Event.trigger_ref == trigger.ref, Event.source_ref == WEBHOOK_SOURCE, Event.created > since)
    count = (await session.execute(sa.select(sa.func.count()).select_from(Event).where(*recent))).scalar_one()
    if count < limit:
        return count, None
    query = sa.select(Event.created).where(*recent).order_by(Event.created).offset(count - limit).limit(1)
    return count, (await session.execute(query)).scalar_one_or_none()
