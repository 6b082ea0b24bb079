"""Registers a parsed pack into the database (packs.md §11, intended behaviour).

Everything happens in one transaction: a pack that fails anywhere leaves nothing behind.
Re-registering is an idempotent upsert keyed by ref: changed components are updated, unchanged
ones are left alone (their ``updated`` does not move), and non-ad-hoc components the pack no
longer ships are deleted. Rules of any pack whose action or trigger was NULL are re-linked by ref.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
import yaml
from sqlalchemy.ext.asyncio import AsyncSession

from attune.bus.messages import MessageType
from attune.db import models
from attune.db.outbox import enqueue
from attune.db.repos import pack_tests, workflows
from attune.domain import params, retry, safe_yaml
from attune.domain.runtimes import canonical_runtime_name
from attune.errors import Conflict, ValidationFailed
from attune.packs.install.tests import TestOutcome, run_and_judge
from attune.packs.manifest import (
    ActionSpec,
    ParsedPack,
    PolicySpec,
    RuleSpec,
    RuntimeSpec,
    SensorSpec,
    WorkflowFileSpec,
)
from attune.packs.parser import PackFormatError, parse_pack_dir
from attune.runtime import Runtime
from attune.workflow.spec import DEFAULT_MAX_TASKS, WorkflowValidationError, parse_workflow

log = logging.getLogger(__name__)


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


async def register_pack(
    runtime: Runtime,
    path: Path,
    *,
    force: bool = False,
    skip_tests: bool = False,
    allow_existing: bool = False,
    installation: dict[str, Any] | None = None,
    fail_on_error: bool = False,
) -> RegistrationResult:
    """Parse ``path`` and register it. An existing ref needs ``force`` (or ``allow_existing``).

    Unless ``skip_tests``, the pack's tests run first (packs.md §15); a blocking failure raises 400
    before anything is written, and the run is stored with the registration.

    A file Attune cannot load (unsupported StackStorm content, a workflow that does not validate,
    an action whose runner matches no runtime) is skipped with a warning and the rest registers;
    with ``fail_on_error`` the registration fails instead (422 listing every such file).
    """
    parsed = parse_pack_dir(path)
    spec = parsed.pack
    tests = None
    if not skip_tests:
        tests = await run_and_judge(spec.ref, spec.version, spec.testing, path, force=force)
    async with runtime.db.transaction() as session:
        result = await register_parsed(
            session,
            parsed,
            force=force,
            allow_existing=allow_existing,
            installation=installation,
            tests=tests,
            fail_on_error=fail_on_error,
            max_tasks=runtime.settings.executor.workflow_max_tasks,
        )
    for warning in result.warnings:
        level = logging.WARNING if warning in result.skipped else logging.INFO
        log.log(level, "pack %s: %s", parsed.pack.ref, warning)
    return result


async def register_parsed(
    session: AsyncSession,
    parsed: ParsedPack,
    *,
    force: bool = False,
    allow_existing: bool = False,
    installation: dict[str, Any] | None = None,
    tests: TestOutcome | None = None,
    fail_on_error: bool = False,
    max_tasks: int = DEFAULT_MAX_TASKS,
) -> RegistrationResult:
    """Register an already parsed pack inside the caller's transaction (the installer's swap).

    ``max_tasks`` bounds each workflow (``executor.workflow_max_tasks``)."""
    existing = await _by_ref(session, models.Pack, parsed.pack.ref)
    if existing is not None and not (force or allow_existing):
        raise Conflict(f"Pack '{parsed.pack.ref}' already exists. Use force=true to reinstall.")
    result = await _apply(session, parsed, existing, installation, max_tasks)
    if fail_on_error and result.skipped:
        raise PackFormatError("; ".join(result.skipped))  # the caller's transaction rolls back
    if tests is not None:
        reason = "install" if result.created else "update"
        await pack_tests.record(session, result.pack.id, tests.result, reason)
        result.test_result = tests.result
        if tests.verdict.warning:
            result.warnings.append(tests.verdict.warning)
    runtime_names = await _environment_runtimes(session, result.pack.id)
    if runtime_names:
        enqueue(
            session,
            MessageType.PACK_REGISTERED,
            {
                "pack_id": result.pack.id,
                "pack_ref": result.pack.ref,
                "version": result.pack.version,
                "runtime_names": runtime_names,
            },
            source_service="api",
        )
    return result


async def register_system_packs(runtime: Runtime) -> list[str]:
    """Register every ``system: true`` pack found directly under ``packs_base_dir``."""
    base = runtime.settings.packs_base_dir
    registered: list[str] = []
    if not base.is_dir():
        log.warning("packs_base_dir %s does not exist; no system packs registered", base)
        return registered
    # Hidden directories are the API's staging and backup copies, never packs of their own.
    candidates = (p for p in base.iterdir() if not p.name.startswith(".") and (p / "pack.yaml").is_file())
    for pack_dir in sorted(candidates):
        try:
            manifest = safe_yaml.load((pack_dir / "pack.yaml").read_text()) or {}
        except yaml.YAMLError:
            continue
        if not isinstance(manifest, dict) or not manifest.get("system"):
            continue
        result = await register_pack(runtime, pack_dir, allow_existing=True, skip_tests=True)
        registered.append(result.pack.ref)
    return registered


async def _by_ref(session: AsyncSession, model: type[M], ref: str) -> M | None:
    column = model.__table__.c.ref  # type: ignore[attr-defined]
    result = await session.execute(sa.select(model).where(column == ref))
    return result.scalar_one_or_none()


def _assign(row: Any, values: dict[str, Any]) -> bool:
    """Set attributes that differ; return whether anything changed."""
    changed = False
    for key, value in values.items():
        if getattr(row, key) != value:
            setattr(row, key, value)
            changed = True
    return changed


def _count(counts: dict[str, int], kind: str, what: str) -> None:
    plural = f"{kind[:-1]}ies" if kind.endswith("y") else f"{kind}s"
    counts[f"{plural}_{what}"] = counts.get(f"{plural}_{what}", 0) + 1


async def _upsert(
    session: AsyncSession,
    model: type[M],
    kind: str,
    ref: str,
    pack: models.Pack,
    values: dict[str, Any],
    counts: dict[str, int],
) -> M:
    row = await _by_ref(session, model, ref)
    if row is None:
        row = model(ref=ref, pack=pack.id, pack_ref=pack.ref, **values)
        session.add(row)
        _count(counts, kind, "created")
    else:
        owner = getattr(row, "pack", None)
        if owner is not None and owner != pack.id:
            raise ValidationFailed(
                f"{kind} '{ref}' already belongs to pack '{getattr(row, 'pack_ref', owner)}'; "
                f"pack '{pack.ref}' cannot register it"
            )
        if _assign(row, {"pack": pack.id, "pack_ref": pack.ref, **values}):
            _count(counts, kind, "updated")
    await session.flush()
    return row


async def _apply(
    session: AsyncSession,
    parsed: ParsedPack,
    existing: models.Pack | None,
    installation: dict[str, Any] | None,
    max_tasks: int,
) -> RegistrationResult:
    spec = parsed.pack
    pack_values: dict[str, Any] = {
        "label": spec.label,
        "description": spec.description,
        "version": spec.version,
        "conf_schema": spec.conf_schema,
        "config": spec.config,
        "meta": spec.meta,
        "tags": list(spec.tags),
        "runtime_deps": list(spec.runtime_deps),
        "dependencies": list(spec.dependencies),
        "is_standard": spec.system,
        "storage_path": str(spec.path),
        **(installation or {}),
    }
    if existing is None:
        pack = models.Pack(ref=spec.ref, **pack_values)
        session.add(pack)
        await session.flush()
    else:
        pack = existing
        if existing.config and existing.config != spec.config:
            # Operators edit pack config through the API; a re-register keeps their values.
            pack_values["config"] = {**spec.config, **existing.config}
        _assign(pack, pack_values)
        await session.flush()
    result = RegistrationResult(
        pack=pack, created=existing is None, warnings=list(parsed.warnings), skipped=list(parsed.skipped)
    )
    counts = result.counts

    runtime_ids = {}
    for runtime_spec in parsed.runtimes:
        runtime_ids[runtime_spec.ref] = await _register_runtime(session, pack, runtime_spec, counts)

    trigger_ids: dict[str, int] = {}
    for trigger in parsed.triggers:
        row = await _upsert(
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
        trigger_ids[trigger.ref] = row.id

    action_refs = set()
    for action in parsed.actions:
        if await _register_action(session, pack, action, counts, result):
            action_refs.add(action.ref)

    sensor_refs = set()
    for sensor in parsed.sensors:
        if await _register_sensor(session, pack, sensor, counts, result.warnings):
            sensor_refs.add(sensor.ref)

    workflow_refs = await _register_workflows(session, pack, parsed.workflows, counts, result, max_tasks)

    rule_refs = set()
    for rule in parsed.rules:
        await _register_rule(session, pack, rule, counts)
        rule_refs.add(rule.ref)

    policy_refs = set()
    for policy in parsed.policies:
        await _register_policy(session, pack, policy, counts)
        policy_refs.add(policy.ref)

    for _ in await workflows.remove_missing(session, pack.id, workflow_refs):
        _count(counts, "workflow", "removed")
    await _remove_missing(session, pack, models.Policy, policy_refs, counts, "policy")
    await _remove_missing(session, pack, models.Rule, rule_refs, counts, "rule")
    await _remove_missing(session, pack, models.Sensor, sensor_refs, counts, "sensor")
    await _remove_missing(session, pack, models.Action, action_refs, counts, "action")
    await _remove_missing(session, pack, models.Trigger, set(trigger_ids), counts, "trigger")
    await _remove_missing(session, pack, models.Runtime, set(runtime_ids), counts, "runtime")
    await relink_rules(session)
    return result


async def _register_workflows(
    session: AsyncSession,
    pack: models.Pack,
    files: list[WorkflowFileSpec],
    counts: dict[str, int],
    result: RegistrationResult,
    max_tasks: int,
) -> set[str]:
    """Upsert a definition and companion action per workflow file (workflows.md §1, packs.md §10).

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
            _skip(result, f"{file.rel_path}: {'; '.join(exc.errors)}; workflow skipped")
            continue
        entrypoint = file.rel_path.removeprefix("actions/")
        before = await workflows.by_ref(session, file.ref)
        snapshot = None if before is None else (before.updated, before.definition)
        row, created = await workflows.save_definition(
            session, pack, file.ref, workflows.definition_values(spec), entrypoint=entrypoint
        )
        if created:
            _count(counts, "workflow", "created")
        elif snapshot != (row.updated, row.definition):
            _count(counts, "workflow", "updated")
        refs.add(file.ref)
    return refs


async def _register_runtime(
    session: AsyncSession, pack: models.Pack, spec: RuntimeSpec, counts: dict[str, int]
) -> int:
    row = await _upsert(
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
    existing = {
        v.version: v
        for v in (
            await session.execute(
                sa.select(models.RuntimeVersion).where(models.RuntimeVersion.runtime == row.id)
            )
        ).scalars()
    }
    for version in spec.versions:
        values = {
            "runtime_ref": row.ref,
            "version_major": version.major,
            "version_minor": version.minor,
            "version_patch": version.patch,
            "execution_config": version.execution_config,
            "distributions": version.distributions,
            "is_default": version.is_default,
            "meta": version.meta,
        }
        current = existing.pop(version.version, None)
        if current is None:
            session.add(models.RuntimeVersion(runtime=row.id, version=version.version, **values))
        else:
            _assign(current, values)
    for stale in existing.values():
        await session.delete(stale)
    await session.flush()
    return row.id


async def resolve_runtime(session: AsyncSession, runtime_ref: str) -> models.Runtime | None:
    """A runtime by ref, else by alias-equal name (packs.md §5 runner resolution)."""
    row = await _by_ref(session, models.Runtime, runtime_ref)
    if row is not None:
        return row
    wanted = canonical_runtime_name(runtime_ref)
    for candidate in (await session.execute(sa.select(models.Runtime).order_by(models.Runtime.id))).scalars():
        if canonical_runtime_name(candidate.name) == wanted:
            return candidate
    return None


def _skip(result: RegistrationResult, message: str) -> None:
    result.warnings.append(message)
    result.skipped.append(message)


async def _register_action(
    session: AsyncSession,
    pack: models.Pack,
    spec: ActionSpec,
    counts: dict[str, int],
    result: RegistrationResult,
) -> bool:
    """Upsert one action; an action whose runner matches no runtime is skipped with a warning."""
    runtime_row = await resolve_runtime(session, spec.runtime_ref) if spec.runtime_ref else None
    if spec.runtime_ref and runtime_row is None:
        if spec.runtime_ref.startswith("core."):
            # A known runner whose core runtime is not registered yet: stored, runnable later.
            result.warnings.append(
                f"action '{spec.ref}': runtime '{spec.runtime_ref}' is not registered; "
                "stored without a runtime"
            )
        else:
            _skip(
                result,
                f"action '{spec.ref}': runner_type '{spec.runner_type}' matches no runtime; action skipped",
            )
            return False
    await _upsert(
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


async def _register_sensor(
    session: AsyncSession, pack: models.Pack, spec: SensorSpec, counts: dict[str, int], warnings: list[str]
) -> bool:
    runtime_row = await resolve_runtime(session, spec.runtime_ref)
    if runtime_row is None:
        warnings.append(f"sensor '{spec.ref}': runtime '{spec.runtime_ref}' not found; sensor skipped")
        return False
    trigger_row = None
    for trigger_ref in spec.trigger_refs:
        trigger_row = await _by_ref(session, models.Trigger, trigger_ref)
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
    await _upsert(
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


async def _register_rule(
    session: AsyncSession, pack: models.Pack, spec: RuleSpec, counts: dict[str, int]
) -> None:
    action = await _by_ref(session, models.Action, spec.action_ref)
    trigger = await _by_ref(session, models.Trigger, spec.trigger_ref)
    if trigger is not None:
        params.validate_params(
            spec.trigger_params, trigger.param_schema, kind="trigger", ref=trigger.ref, allow_templates=True
        )
    if action is not None:
        params.validate_params(
            spec.action_params, action.param_schema, kind="action", ref=action.ref, allow_templates=True
        )
    await _upsert(
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


async def _register_policy(
    session: AsyncSession, pack: models.Pack, spec: PolicySpec, counts: dict[str, int]
) -> None:
    """Upsert one pack policy; its action must exist (in this pack or already in the database)."""
    action = None
    if spec.action_ref is not None:
        action = await _by_ref(session, models.Action, spec.action_ref)
        if action is None:
            raise PackFormatError(
                f"{spec.rel_path}: action '{spec.action_ref}' is not defined in this pack "
                "nor registered by another pack"
            )
    await _upsert(
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


async def _remove_missing(
    session: AsyncSession,
    pack: models.Pack,
    model: type[M],
    keep: set[str],
    counts: dict[str, int],
    kind: str,
) -> None:
    table = model.__table__  # type: ignore[attr-defined]
    query = sa.select(model).where(table.c.pack == pack.id)
    if "is_adhoc" in table.c:
        query = query.where(table.c.is_adhoc.is_(False))
    if "workflow_def" in table.c:
        # Workflow companion actions belong to their workflow definition, not to the pack files.
        query = query.where(table.c.workflow_def.is_(None))
    for row in (await session.execute(query)).scalars():
        if getattr(row, "ref") not in keep:  # noqa: B009 - M (any component model) has no typed `ref`
            await session.delete(row)
            _count(counts, kind, "removed")
    await session.flush()


async def relink_rules(session: AsyncSession) -> None:
    """Give rules whose action/trigger is NULL the id of the entity that now holds that ref."""
    rule, action, trigger = models.Rule, models.Action, models.Trigger
    await session.execute(
        sa.update(rule)
        .where(rule.action.is_(None))
        .values(action=sa.select(action.id).where(action.ref == rule.action_ref).scalar_subquery())
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        sa.update(rule)
        .where(rule.trigger.is_(None))
        .values(trigger=sa.select(trigger.id).where(trigger.ref == rule.trigger_ref).scalar_subquery())
        .execution_options(synchronize_session=False)
    )


async def _environment_runtimes(session: AsyncSession, pack_id: int) -> list[str]:
    """Lower-case names of the runtimes the pack's actions use that need an environment."""
    query = (
        sa.select(models.Runtime)
        .join(models.Action, models.Action.runtime == models.Runtime.id)
        .where(models.Action.pack == pack_id)
        .distinct()
    )
    names = set()
    for row in (await session.execute(query)).scalars():
        config = row.execution_config or {}
        env = (config.get("environment") or {}).get("env_type")
        if (env and env != "none") or config.get("dependencies"):
            names.add(row.name.lower())
    return sorted(names)
