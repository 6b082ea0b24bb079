"""Event processor: ``EventCreated`` → matching rules → enforcements (docs/operations.md).

One transaction per event. For every candidate rule, independently: evaluate its conditions,
resolve its ``action_params`` templates, insert an enforcement and stage ``EnforcementCreated``.
A rule whose conditions or templates fail is logged and skipped; the others still fire.

Fast path (docs/performance.md, "Next steps"): given the executor's
:class:`~attune.executor.enforcements.EnforcementProcessor`, an enforcement whose action no
concurrency or rate-limit policy applies to is decided in the same transaction — its execution
requested (``ExecutionRequested`` staged) and the enforcement ``processed`` — instead of staging
``EnforcementCreated`` for a second transaction. Given the scheduler's ``dispatch_inline`` too,
the execution is also scheduled on a live worker in that transaction (its dispatch staged instead
of ``ExecutionRequested``) when one is available. With a policy the enforcement goes the policy path.

Redelivery is harmless: rules that already have an enforcement for the event are skipped, the
event row is locked (PostgreSQL) so two deliveries do not both try, and the unique index on
(event, rule) refuses a second enforcement whatever happens (docs/operations.md, "Guarantees").
An enforcement decided inline is no longer ``created``, so a stray ``EnforcementCreated`` for it
changes nothing, and ``uq_execution_enforcement`` keeps its execution unique.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from attune.db.models import Enforcement, Event, Rule
from attune.db.outbox import enqueue
from attune.db.repos import actions, enforcements, events, packs
from attune.db.repos.executions import flat_schema
from attune.db.types import utcnow
from attune.domain import budget
from attune.domain.criteria import CriteriaError, matches
from attune.domain.enums import EnforcementCondition, EnforcementStatus
from attune.domain.params import secret_names
from attune.domain.templates import (
    TemplateBudgetExceeded,
    TemplateEngine,
    TemplateError,
    resolve_action_params,
    rule_context,
)
from attune.errors import NotFound
from attune.executor.enforcements import EnforcementProcessor, InlineDispatch
from attune.messaging.messages import Envelope, EventCreated, MessageType
from attune.operations import template_keys
from attune.platform import Platform

log = logging.getLogger(__name__)

SOURCE = "executor"


async def candidate_rules(session: AsyncSession, event: Event) -> Sequence[Rule]:
    """Rules to evaluate for ``event``: its own rule when it names one, else the trigger's.

    An event created for one rule instance considers only that rule (if it still exists and is
    enabled), whatever its trigger; otherwise every enabled rule of the event's trigger ref, by ref.
    """
    if event.rule is not None:
        rule = await events.rule_by_id(session, event.rule)
        return [rule] if rule is not None and rule.enabled else []
    return await events.enabled_rules_of_trigger(session, event.trigger_ref)


class EventProcessor:
    """Consumes ``attune.executor.events.queue``."""

    def __init__(
        self,
        platform: Platform,
        *,
        engine: TemplateEngine | None = None,
        enforcements: EnforcementProcessor | None = None,
        dispatch: InlineDispatch | None = None,
    ) -> None:
        self._platform = platform
        self._engine = engine or TemplateEngine()
        # Decides policy-free enforcements inline (the fast path); None stages every one.
        self._inline = enforcements
        # Schedules an inline-requested execution in the same transaction (the scheduler's).
        self._dispatch = dispatch

    async def handle(self, envelope: Envelope) -> None:
        """Handle one ``EventCreated`` message (a missing event dead-letters it)."""
        payload = envelope.payload_as(EventCreated)
        requested: list[int] = []
        try:
            await self._process(payload.event_id, requested)
        except BaseException:
            if self._inline is not None:
                for execution_id in requested:
                    self._inline.forget(execution_id)
            raise
        if requested and self._inline is not None:
            self._inline.stats_changed()

    async def _process(self, event_id: int, requested: list[int]) -> None:
        """One transaction: the event's enforcements; ids of executions requested inline go to
        ``requested``."""
        async with self._platform.db.transaction() as session:
            event = await events.get_locked(session, event_id)
            if event is None:
                raise NotFound(f"Event {event_id} not found")
            rules = await candidate_rules(session, event)
            if not rules:
                return
            done = await enforcements.rules_enforced(session, event.id)
            configs: dict[int, dict[str, Any]] = {}
            now = utcnow()
            for rule in rules:
                if rule.id in done:
                    log.debug("event %s already enforced rule %s; skipping", event.id, rule.ref)
                    continue
                try:
                    config = await self._evaluate(session, event, rule, configs, now)
                except (TemplateBudgetExceeded, budget.BudgetExceeded) as exc:
                    # Recorded, not only logged: docs/security.md "Input limits".
                    log.warning("rule %s refused for event %s: %s", rule.ref, event.id, exc)
                    await self._refuse(session, event, rule, str(exc))
                    continue
                if config is not None:
                    await self._enforce(session, event, rule, config, requested)

    async def _evaluate(
        self,
        session: AsyncSession,
        event: Event,
        rule: Rule,
        pack_configs: dict[int, dict[str, Any]],
        now: datetime,
    ) -> dict[str, Any] | None:
        """The resolved parameters when ``rule`` fires for ``event``; ``None`` when it does not."""
        if rule.pack not in pack_configs:
            config = await packs.config_of(session, rule.pack)
            pack_configs[rule.pack] = config if isinstance(config, dict) else {}
        context = rule_context(
            event={
                "id": event.id,
                "payload": event.payload,
                "trigger": event.trigger_ref,
                "created": event.created,
            },
            pack_config=pack_configs[rule.pack],
            rule_id=rule.id,
            rule_ref=rule.ref,
            now=now,
        )
        box = self._platform.secrets
        namespace = await template_keys.namespace_for(
            session, rule.action_params, rule.conditions, pack_id=rule.pack, identity_id=None, box=box
        )
        if namespace is not None:
            context["key"] = context["st2kv"] = namespace
        try:
            fire = (rule.conditions, rule.action_params, event.payload, context)
            if _has_templates(self._engine, rule.conditions) or _has_templates(
                self._engine, rule.action_params
            ):
                # Off the event loop, under one budget (docs/security.md "Input limits").
                resolved = await budget.offload(_fire, self._engine, *fire)
            else:
                resolved = _fire(self._engine, *fire)  # plain data and field tests: cheap, inline
            if resolved is None:
                log.debug("rule %s: conditions do not match event %s", rule.ref, event.id)
                return None
            if namespace is None:
                return resolved
            action = await actions.get(session, rule.action) if rule.action is not None else None
            secret = secret_names(flat_schema(action.param_schema)) if action is not None else set()
            return template_keys.seal_revealed(resolved, secret, namespace, box)
        except (TemplateBudgetExceeded, budget.BudgetExceeded):
            raise
        except (CriteriaError, TemplateError) as exc:
            log.warning("rule %s skipped for event %s: %s", rule.ref, event.id, exc)
        except Exception:
            # One broken rule must not stop the others (docs/operations.md).
            log.exception("rule %s skipped for event %s", rule.ref, event.id)
        return None

    async def _enforce(
        self,
        session: AsyncSession,
        event: Event,
        rule: Rule,
        config: dict[str, Any],
        requested: list[int],
    ) -> None:
        payload = event.payload if isinstance(event.payload, dict) else {}
        enforcement = Enforcement(
            rule=rule.id,
            rule_ref=rule.ref,
            trigger_ref=rule.trigger_ref,
            event=event.id,
            status=EnforcementStatus.CREATED.value,
            payload=payload,
            config=config,
            condition=EnforcementCondition.ALL.value,
            conditions=rule.conditions if rule.conditions is not None else [],
        )
        if not await enforcements.add_for_event(session, enforcement):
            log.debug("event %s already enforced rule %s; skipping", event.id, rule.ref)
            return
        if self._inline is not None:
            inline = await self._inline.decide_inline(session, enforcement, dispatch=self._dispatch)
            if inline.execution_id is not None:
                requested.append(inline.execution_id)
            if inline.decided:
                log.info("event %s fired rule %s: enforcement %s", event.id, rule.ref, enforcement.id)
                return
        enqueue(
            session,
            MessageType.ENFORCEMENT_CREATED,
            {
                "enforcement_id": enforcement.id,
                "rule_id": rule.id,
                "rule_ref": rule.ref,
                "event_id": event.id,
                "trigger_ref": event.trigger_ref,
                "payload": payload,
            },
            source_service=SOURCE,
        )
        log.info("event %s fired rule %s: enforcement %s", event.id, rule.ref, enforcement.id)

    async def _refuse(self, session: AsyncSession, event: Event, rule: Rule, error: str) -> None:
        """Record a firing that cannot run: a ``disabled`` enforcement carrying ``error``, no execution."""
        refused = Enforcement(
            rule=rule.id,
            rule_ref=rule.ref,
            trigger_ref=rule.trigger_ref,
            event=event.id,
            status=EnforcementStatus.DISABLED.value,
            payload=event.payload if isinstance(event.payload, dict) else {},
            config={},
            condition=EnforcementCondition.ALL.value,
            conditions=rule.conditions if rule.conditions is not None else [],
            error=error,
            resolved_at=utcnow(),
        )
        # A redelivered event finds its refusal already recorded (one enforcement per rule).
        await enforcements.add_for_event(session, refused)


def _has_templates(engine: TemplateEngine, value: Any) -> bool:
    """Whether evaluating ``value`` (conditions or parameters) renders a template."""
    if isinstance(value, str):
        return engine.is_template(value)
    if isinstance(value, dict):
        return "expression" in value or any(_has_templates(engine, item) for item in value.values())
    if isinstance(value, list | tuple):
        return any(_has_templates(engine, item) for item in value)
    return False


def _fire(
    engine: TemplateEngine,
    conditions: Any,
    action_params: Any,
    payload: Any,
    context: dict[str, Any],
) -> dict[str, Any] | None:
    """A rule's conditions, then its ``action_params``: the parameters, or None when it does not match.

    Runs in the render pool (:func:`attune.domain.budget.offload`), never on the event loop.
    """
    if not matches(conditions, payload, engine=engine, context=context):
        return None
    return resolve_action_params(engine, action_params, context)
