"""Registering each kind of pack component (docs/packs.md, "Registering a pack").

Called by :func:`attune.packs.register.register_parsed` inside its transaction, in dependency
order: runtimes, triggers, actions, sensors, workflows, rules, policies. Each function upserts by
ref and counts what it created or updated in ``counts``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from attune.db import models
from attune.db.repos import pack_components, workflows
from attune.db.repos import runtimes as runtime_rows
from attune.domain import params, retry
from attune.packs.manifest import (
    ActionSpec,
    PolicySpec,
    RuleSpec,
    RuntimeSpec,
    SensorSpec,
    TriggerSpec,
    WorkflowFileSpec,
)
from attune.packs.parser import PackFormatError
from attune.workflow.engine import definitions
from attune.workflow.spec import WorkflowValidationError, parse_workflow

M = TypeVar("M", bound=models.Base)


@dataclass
class RegistrationResult:
    pack: models.Pack
    created: bool
    warnings: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    #: The PackTestResult stored with this registration (``None`` when no tests ran).
    test_result: dict[str, Any] | None = None
    #: Files left out at registration (also in ``warnings``).
    skipped: list[str] = field(default_factory=list)


def count(counts: dict[str, int], kind: str, what: str) -> None:
    plural = f"{kind[:-1]}ies" if kind.endswith("y") else f"{kind}s"
    counts[f"{plural}_{what}"] = counts.get(f"{plural}_{what}", 0) + 1


async def upsert(
    session: AsyncSession,
    model: type[M],
    kind: str,
    ref: str,
    pack: models.Pack,
    values: dict[str, Any],
    counts: dict[str, int],
) -> M:
    """Upsert one component and count what happened to it."""
    row, outcome = await pack_components.upsert(session, model, kind, ref, pack, values)
    if outcome is not None:
        count(counts, kind, outcome)
    return row


async def remove_missing(
    session: AsyncSession,
    pack: models.Pack,
    model: type[M],
    keep: set[str],
    counts: dict[str, int],
    kind: str,
) -> None:
    """Delete the pack's components of one kind that it no longer ships, and count them."""
    for _ in range(await pack_components.remove_missing(session, model, pack.id, keep)):
        count(counts, kind, "removed")


async def register_trigger(
    session: AsyncSession, pack: models.Pack, trigger: TriggerSpec, counts: dict[str, int]
) -> int:
    row = await upsert(
        session,
        models.Trigger,
        "trigger",
        trigger.ref,
        pack,
        {
            "label": trigger.label,
            "description": trigger.description,
            "enabled": trigger.enabled,
            "param_schema": trigger.param_schema,
            "out_schema": trigger.out_schema,
            "is_adhoc": False,
        },
        counts,
    )
    return row.id


async def register_workflows(
    session: AsyncSession,
    pack: models.Pack,
    files: list[WorkflowFileSpec],
    counts: dict[str, int],
    result: RegistrationResult,
    max_tasks: int,
) -> set[str]:
    """Upsert a definition and companion action per workflow file (docs/workflows.md, docs/packs.md).

    A file that does not validate is skipped with a warning naming it; the pack still registers
    (docs/packs.md; ``fail_on_error`` refuses the pack instead).
    """
    refs: set[str] = set()
    for file in files:
        try:
            spec = parse_workflow(
                file.raw,
                ref=file.ref,
                runner_type=file.runner_type,
                parameters=file.parameters,
                max_tasks=max_tasks,
            )
        except WorkflowValidationError as exc:
            skip(result, f"{file.rel_path}: {'; '.join(exc.errors)}; workflow skipped")
            continue
        entrypoint = file.rel_path.removeprefix("actions/")
        before = await workflows.by_ref(session, file.ref)
        snapshot = None if before is None else (before.updated, before.definition)
        row, created = await workflows.save_definition(
            session, pack, file.ref, definitions.definition_values(spec), entrypoint=entrypoint
        )
        if created:
            count(counts, "workflow", "created")
        elif snapshot != (row.updated, row.definition):
            count(counts, "workflow", "updated")
        refs.add(file.ref)
    return refs


async def register_runtime(
    session: AsyncSession, pack: models.Pack, spec: RuntimeSpec, counts: dict[str, int]
) -> int:
    row = await upsert(
        session,
        models.Runtime,
        "runtime",
        spec.ref,
        pack,
        {
            "name": spec.name,
            "description": spec.description,
            "distributions": spec.distributions,
            "installation": spec.installation,
            "execution_config": spec.execution_config,
        },
        counts,
    )
    versions = {
        version.version: {
            "runtime_ref": row.ref,
            "version_major": version.major,
            "version_minor": version.minor,
            "version_patch": version.patch,
            "execution_config": version.execution_config,
            "distributions": version.distributions,
            "is_default": version.is_default,
            "meta": version.meta,
        }
        for version in spec.versions
    }
    await pack_components.sync_runtime_versions(session, row.id, versions)
    return row.id


def skip(result: RegistrationResult, message: str) -> None:
    result.warnings.append(message)
    result.skipped.append(message)


async def register_action(
    session: AsyncSession,
    pack: models.Pack,
    spec: ActionSpec,
    counts: dict[str, int],
    result: RegistrationResult,
) -> bool:
    """Upsert one action; an action whose runner matches no runtime is skipped with a warning."""
    runtime_row = await runtime_rows.resolve(session, spec.runtime_ref) if spec.runtime_ref else None
    if spec.runtime_ref and runtime_row is None:
        if spec.runtime_ref.startswith("core."):
            # A known runner whose core runtime is not registered yet: stored, runnable later.
            result.warnings.append(
                f"action '{spec.ref}': runtime '{spec.runtime_ref}' is not registered; "
                "stored without a runtime"
            )
        else:
            skip(
                result,
                f"action '{spec.ref}': runner_type '{spec.runner_type}' matches no runtime; action skipped",
            )
            return False
    await upsert(
        session,
        models.Action,
        "action",
        spec.ref,
        pack,
        {
            "label": spec.label,
            "description": spec.description,
            "entrypoint": spec.entrypoint,
            "runtime": runtime_row.id if runtime_row else None,
            "runtime_version_constraint": spec.runtime_version_constraint,
            "param_schema": spec.param_schema,
            "out_schema": spec.out_schema,
            "parameter_delivery": spec.parameter_delivery,
            "parameter_format": spec.parameter_format,
            "output_format": spec.output_format,
            "timeout_seconds": spec.timeout_seconds,
            **retry.columns(spec.retry or retry.RetryPolicy()),
            "is_adhoc": False,
        },
        counts,
    )
    return True


async def register_sensor(
    session: AsyncSession, pack: models.Pack, spec: SensorSpec, counts: dict[str, int], warnings: list[str]
) -> bool:
    runtime_row = await runtime_rows.resolve(session, spec.runtime_ref)
    if runtime_row is None:
        warnings.append(f"sensor '{spec.ref}': runtime '{spec.runtime_ref}' not found; sensor skipped")
        return False
    trigger_row = None
    for trigger_ref in spec.trigger_refs:
        trigger_row = await pack_components.by_ref(session, models.Trigger, trigger_ref)
        if trigger_row is not None:
            break
    if trigger_row is None:
        warnings.append(
            f"sensor '{spec.ref}': none of its triggers {spec.trigger_refs} exist; sensor skipped"
        )
        return False
    config = dict(spec.config)
    if len(spec.trigger_refs) > 1:
        config.setdefault("trigger_types", list(spec.trigger_refs))
    await upsert(
        session,
        models.Sensor,
        "sensor",
        spec.ref,
        pack,
        {
            "label": spec.label,
            "description": spec.description,
            "entrypoint": spec.entrypoint,
            "runtime": runtime_row.id,
            "runtime_ref": runtime_row.ref,
            "runtime_version_constraint": spec.runtime_version_constraint,
            "trigger": trigger_row.id,
            "trigger_ref": trigger_row.ref,
            "param_schema": spec.param_schema,
            "config": config,
            "enabled": spec.enabled,
            "is_adhoc": False,
        },
        counts,
    )
    return True


async def register_rule(
    session: AsyncSession, pack: models.Pack, spec: RuleSpec, counts: dict[str, int]
) -> None:
    action = await pack_components.by_ref(session, models.Action, spec.action_ref)
    trigger = await pack_components.by_ref(session, models.Trigger, spec.trigger_ref)
    if trigger is not None:
        params.validate_params(
            spec.trigger_params, trigger.param_schema, kind="trigger", ref=trigger.ref, allow_templates=True
        )
    if action is not None:
        params.validate_params(
            spec.action_params, action.param_schema, kind="action", ref=action.ref, allow_templates=True
        )
    await upsert(
        session,
        models.Rule,
        "rule",
        spec.ref,
        pack,
        {
            "label": spec.label,
            "description": spec.description,
            "action": action.id if action else None,
            "action_ref": spec.action_ref,
            "trigger": trigger.id if trigger else None,
            "trigger_ref": spec.trigger_ref,
            "conditions": spec.conditions,
            "action_params": spec.action_params,
            "trigger_params": spec.trigger_params,
            "enabled": spec.enabled,
            "is_adhoc": False,
        },
        counts,
    )


async def register_policy(
    session: AsyncSession, pack: models.Pack, spec: PolicySpec, counts: dict[str, int]
) -> None:
    """Upsert one pack policy; its action must exist (in this pack or already in the database)."""
    action = None
    if spec.action_ref is not None:
        action = await pack_components.by_ref(session, models.Action, spec.action_ref)
        if action is None:
            raise PackFormatError(
                f"{spec.rel_path}: action '{spec.action_ref}' is not defined in this pack "
                "nor registered by another pack"
            )
    await upsert(
        session,
        models.Policy,
        "policy",
        spec.ref,
        pack,
        {
            # The owning pack is set by _upsert; an action policy is scoped by its action.
            "action": action.id if action else None,
            "action_ref": spec.action_ref,
            "name": spec.name,
            "description": spec.description,
            "kind": spec.kind,
            "threshold": spec.threshold,
            "window_seconds": spec.window_seconds,
            "method": spec.method,
            "parameters": list(spec.parameters),
            "tags": list(spec.tags),
            "apply_to_manual": spec.apply_to_manual,
        },
        counts,
    )
