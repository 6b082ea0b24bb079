"""Rule rows and the bus payloads describing them."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from attune.db.models import Rule
from attune.db.repos import by_pk


async def by_ref(session: AsyncSession, ref: str) -> Rule | None:
    """The rule with this ref, or None."""
    return (await session.execute(sa.select(Rule).where(Rule.ref == ref))).scalar_one_or_none()


def list_query(
    *,
    pack_id: int | None = None,
    action_id: int | None = None,
    trigger_id: int | None = None,
    enabled: bool | None = None,
) -> sa.Select[Any]:
    """Rules ordered by ref, optionally filtered by pack, action, trigger and enabled flag."""
    query = sa.select(Rule).order_by(Rule.ref, Rule.id)
    if pack_id is not None:
        query = query.where(Rule.pack == pack_id)
    if action_id is not None:
        query = query.where(Rule.action == action_id)
    if trigger_id is not None:
        query = query.where(Rule.trigger == trigger_id)
    if enabled is not None:
        query = query.where(Rule.enabled == enabled)
    return query


async def create(session: AsyncSession, **values: Any) -> Rule:
    """Insert a rule and return it with its id and timestamps."""
    rule = Rule(**values)
    session.add(rule)
    await session.flush()
    return rule


async def delete(session: AsyncSession, rule: Rule) -> None:
    """Delete a rule: enforcement and event ``rule`` become NULL."""
    await session.execute(sa.delete(Rule).where(Rule.id == rule.id))


def created_payload(rule: Rule) -> dict[str, Any]:
    """The ``RuleCreated`` payload."""
    return {
        "rule_id": rule.id,
        "rule_ref": rule.ref,
        "trigger_id": rule.trigger,
        "trigger_ref": rule.trigger_ref,
        "action_id": rule.action,
        "action_ref": rule.action_ref,
        "trigger_params": rule.trigger_params,
        "enabled": rule.enabled,
    }


def enabled_payload(rule: Rule) -> dict[str, Any]:
    """The ``RuleEnabled`` payload."""
    return {
        "rule_id": rule.id,
        "rule_ref": rule.ref,
        "trigger_ref": rule.trigger_ref,
        "trigger_params": rule.trigger_params,
    }


def disabled_payload(rule: Rule) -> dict[str, Any]:
    """The ``RuleDisabled`` payload."""
    return {"rule_id": rule.id, "rule_ref": rule.ref, "trigger_ref": rule.trigger_ref}


async def by_id(session: AsyncSession, rule_id: int) -> Rule | None:
    return await by_pk.get(session, Rule, rule_id)


async def enabled_on_triggers(session: AsyncSession, trigger_refs: Collection[str]) -> Sequence[sa.Row[Any]]:
    """``(id, ref, trigger_ref, trigger_params, updated)`` of the enabled rules on ``trigger_refs``, by id."""
    query = (
        sa.select(Rule.id, Rule.ref, Rule.trigger_ref, Rule.trigger_params, Rule.updated)
        .where(Rule.enabled.is_(True), Rule.trigger_ref.in_(list(trigger_refs)))
        .order_by(Rule.id)
    )
    return (await session.execute(query)).all()
