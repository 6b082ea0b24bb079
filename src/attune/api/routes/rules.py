"""``/api/v1/rules`` (docs/api.md): rule definitions, their lifecycle messages and nested lists."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from sqlalchemy.ext.asyncio import AsyncSession

from attune.api.authz import check_pack, in_readable_packs, require
from attune.api.deps import AUTH, PlatformDep
from attune.api.pagination import PageRequest, fetch_page, make_page, page_a
from attune.api.schemas.common import Data, Page, Success
from attune.api.schemas.rules import CreateRule, RuleResponse, RuleSummary, UpdateRule
from attune.db.models import Rule
from attune.db.outbox import enqueue
from attune.db.repos import actions, rules, triggers
from attune.domain.params import validate_params
from attune.errors import Conflict, NotFound
from attune.messaging.messages import MessageType
from attune.platform import Platform

router = APIRouter(prefix="/api/v1", tags=["rules"], dependencies=AUTH)

PageA = Annotated[PageRequest, Depends(page_a)]

SOURCE = "api"


async def _get(session: AsyncSession, ref: str, action: str = "read") -> Rule:
    rule = await rules.by_ref(session, ref)
    if rule is None:
        raise NotFound(f"Rule '{ref}' not found")
    check_pack("rules", action, rule.pack_ref, f"{action} rule '{ref}'")
    return rule


def _publish_enabled(session: AsyncSession, rule: Rule) -> None:
    enqueue(session, MessageType.RULE_ENABLED, rules.enabled_payload(rule), source_service=SOURCE)


def _publish_disabled(session: AsyncSession, rule: Rule) -> None:
    enqueue(session, MessageType.RULE_DISABLED, rules.disabled_payload(rule), source_service=SOURCE)


async def _page(session: AsyncSession, page: PageRequest, **filters: Any) -> Page[RuleSummary]:
    rows, total = await fetch_page(
        session, in_readable_packs(rules.list_query(**filters), "rules", Rule.pack_ref), page
    )
    return make_page([RuleSummary.model_validate(r) for r in rows], total, page)


@router.get("/rules", dependencies=[require("rules", "read", scoped=True)])
async def list_rules(platform: PlatformDep, page: PageA) -> Page[RuleSummary]:
    """List rules, ordered by ref (pagination family A)."""
    async with platform.db.session() as session:
        return await _page(session, page)


@router.get("/rules/enabled", dependencies=[require("rules", "read", scoped=True)])
async def list_enabled_rules(platform: PlatformDep, page: PageA) -> Page[RuleSummary]:
    """List the enabled rules, ordered by ref."""
    async with platform.db.session() as session:
        return await _page(session, page, enabled=True)


@router.post("/rules", status_code=201, dependencies=[require("rules", "create", scoped=True)])
async def create_rule(body: CreateRule, platform: PlatformDep) -> Data[RuleResponse]:
    """Create an ad-hoc rule (``is_adhoc = true``) and publish `RuleCreated`.

    `trigger_params` are validated against the trigger's `param_schema`, then `action_params`
    against the action's (templates `{{ … }}` allowed): 422 `Invalid parameters for trigger|action
    'x': …`. Attune extension: `description` is optional (stored as `""`).
    """
    conditions = body.conditions if body.conditions is not None else {}
    action_params = body.action_params if body.action_params is not None else {}
    trigger_params = body.trigger_params if body.trigger_params is not None else {}
    check_pack("rules", "create", body.pack_ref, f"create rules in pack '{body.pack_ref}'")
    async with platform.db.transaction() as session:
        if await rules.by_ref(session, body.ref) is not None:
            raise Conflict(f"Rule with ref '{body.ref}' already exists")
        pack = await actions.pack_by_ref(session, body.pack_ref)
        if pack is None:
            raise NotFound(f"Pack '{body.pack_ref}' not found")
        action = await actions.by_ref(session, body.action_ref)
        if action is None:
            raise NotFound(f"Action '{body.action_ref}' not found")
        trigger = await triggers.by_ref(session, body.trigger_ref)
        if trigger is None:
            raise NotFound(f"Trigger '{body.trigger_ref}' not found")
        validate_params(
            trigger_params, trigger.param_schema, kind="trigger", ref=trigger.ref, allow_templates=True
        )
        validate_params(
            action_params, action.param_schema, kind="action", ref=action.ref, allow_templates=True
        )
        actions.check_ref_format("rule", body.ref)
        rule = await rules.create(
            session,
            ref=body.ref,
            pack=pack.id,
            pack_ref=pack.ref,
            label=body.label,
            description=body.description or "",
            action=action.id,
            action_ref=action.ref,
            trigger=trigger.id,
            trigger_ref=trigger.ref,
            conditions=conditions,
            action_params=action_params,
            trigger_params=trigger_params,
            enabled=body.enabled,
            is_adhoc=True,
        )
        enqueue(session, MessageType.RULE_CREATED, rules.created_payload(rule), source_service=SOURCE)
        data = RuleResponse.model_validate(rule)
    return Data(data=data, message="Rule created successfully")


@router.get("/rules/{ref}", dependencies=[require("rules", "read", scoped=True)])
async def get_rule(ref: str, platform: PlatformDep) -> Data[RuleResponse]:
    """One rule by ref."""
    async with platform.db.session() as session:
        rule = await _get(session, ref, "read")
    return Data(data=RuleResponse.model_validate(rule))


@router.put("/rules/{ref}", dependencies=[require("rules", "update", scoped=True)])
async def update_rule(ref: str, body: UpdateRule, platform: PlatformDep) -> Data[RuleResponse]:
    """Update a rule; absent and null fields are left unchanged.

    Supplied param sets are validated against the rule's current trigger and action (looked up
    by `trigger_ref`/`action_ref`; a missing one accepts anything). Messages: an enabled rule whose
    `trigger_params` changed publishes `RuleEnabled`. Attune extension: a change of `enabled`
    publishes `RuleEnabled` / `RuleDisabled` too, so sensor timers follow the rule's state.
    """
    async with platform.db.transaction() as session:
        rule = await _get(session, ref, "update")
        if body.trigger_params is not None:
            trigger = await triggers.by_ref(session, rule.trigger_ref)
            if trigger is not None:
                validate_params(
                    body.trigger_params,
                    trigger.param_schema,
                    kind="trigger",
                    ref=trigger.ref,
                    allow_templates=True,
                )
        if body.action_params is not None:
            action = await actions.by_ref(session, rule.action_ref)
            if action is not None:
                validate_params(
                    body.action_params,
                    action.param_schema,
                    kind="action",
                    ref=action.ref,
                    allow_templates=True,
                )
        was_enabled = rule.enabled
        old_trigger_params = rule.trigger_params
        changes = {
            "label": body.label,
            "description": body.description,
            "conditions": body.conditions,
            "action_params": body.action_params,
            "trigger_params": body.trigger_params,
            "enabled": body.enabled,
        }
        if actions.apply_changes(rule, changes):
            await actions.save(session, rule)
        if rule.enabled and not was_enabled:
            _publish_enabled(session, rule)
        elif was_enabled and not rule.enabled:
            _publish_disabled(session, rule)
        elif rule.enabled and rule.trigger_params != old_trigger_params:
            _publish_enabled(session, rule)
        data = RuleResponse.model_validate(rule)
    return Data(data=data, message="Rule updated successfully")


@router.delete("/rules/{ref}", dependencies=[require("rules", "delete", scoped=True)])
async def delete_rule(ref: str, platform: PlatformDep) -> Success:
    """Delete a rule; enforcements and events keep `rule_ref` with `rule = null`.

    Attune extension: deleting an enabled rule publishes `RuleDisabled`, so sensors stop the
    timers they run for it.
    """
    async with platform.db.transaction() as session:
        rule = await _get(session, ref, "delete")
        if rule.enabled:
            _publish_disabled(session, rule)
        await rules.delete(session, rule)
    return Success(message=f"Rule '{ref}' deleted successfully")


async def _set_enabled(platform: Platform, ref: str, enabled: bool) -> RuleResponse:
    async with platform.db.transaction() as session:
        rule = await _get(session, ref, "delete")
        if actions.apply_changes(rule, {"enabled": enabled}):
            await actions.save(session, rule)
        if enabled:
            _publish_enabled(session, rule)
        else:
            _publish_disabled(session, rule)
        return RuleResponse.model_validate(rule)


@router.post("/rules/{ref}/enable", dependencies=[require("rules", "update")])
async def enable_rule(ref: str, platform: PlatformDep) -> Data[RuleResponse]:
    """Set `enabled = true`, publish `RuleEnabled` and return the rule."""
    return Data(data=await _set_enabled(platform, ref, True), message="Rule enabled successfully")


@router.post("/rules/{ref}/disable", dependencies=[require("rules", "update")])
async def disable_rule(ref: str, platform: PlatformDep) -> Data[RuleResponse]:
    """Set `enabled = false`, publish `RuleDisabled` and return the rule."""
    return Data(data=await _set_enabled(platform, ref, False), message="Rule disabled successfully")


@router.get("/packs/{pack_ref}/rules", dependencies=[require("rules", "read", scoped=True)])
async def list_pack_rules(pack_ref: str, platform: PlatformDep, page: PageA) -> Page[RuleSummary]:
    """The rules of one pack, ordered by ref; 404 when the pack does not exist."""
    async with platform.db.session() as session:
        pack = await actions.pack_by_ref(session, pack_ref)
        if pack is None:
            raise NotFound(f"Pack '{pack_ref}' not found")
        return await _page(session, page, pack_id=pack.id)


@router.get("/actions/{action_ref}/rules", dependencies=[require("rules", "read", scoped=True)])
async def list_action_rules(action_ref: str, platform: PlatformDep, page: PageA) -> Page[RuleSummary]:
    """The rules linked to one action, ordered by ref; 404 when the action does not exist."""
    async with platform.db.session() as session:
        action = await actions.by_ref(session, action_ref)
        if action is None:
            raise NotFound(f"Action '{action_ref}' not found")
        return await _page(session, page, action_id=action.id)


@router.get("/triggers/{trigger_ref}/rules", dependencies=[require("rules", "read", scoped=True)])
async def list_trigger_rules(trigger_ref: str, platform: PlatformDep, page: PageA) -> Page[RuleSummary]:
    """The rules linked to one trigger, ordered by ref; 404 when the trigger does not exist."""
    async with platform.db.session() as session:
        trigger = await triggers.by_ref(session, trigger_ref)
        if trigger is None:
            raise NotFound(f"Trigger '{trigger_ref}' not found")
        return await _page(session, page, trigger_id=trigger.id)
