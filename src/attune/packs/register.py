"""Registers a parsed pack into the database (docs/packs.md, "Registering a pack").

Everything happens in one transaction: a pack that fails anywhere leaves nothing behind.
Re-registering is an idempotent upsert keyed by ref: changed components are updated, unchanged
ones are left alone (their ``updated`` does not move), and non-ad-hoc components the pack no
longer ships are deleted. Rules of any pack whose action or trigger was NULL are re-linked by ref.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.ext.asyncio import AsyncSession

from attune.db import models
from attune.db.outbox import enqueue
from attune.db.repos import pack_components, pack_tests, workflows
from attune.domain import safe_yaml
from attune.errors import Conflict
from attune.messaging.messages import MessageType
from attune.packs import components
from attune.packs.components import RegistrationResult
from attune.packs.install.tests import TestOutcome, run_and_judge
from attune.packs.manifest import ParsedPack
from attune.packs.parser import PackFormatError, parse_pack_dir
from attune.platform import Platform
from attune.workflow.spec import DEFAULT_MAX_TASKS

__all__ = ["RegistrationResult", "register_pack", "register_parsed", "register_system_packs"]

log = logging.getLogger(__name__)


async def register_pack(
    platform: Platform,
    path: Path,
    *,
    force: bool = False,
    skip_tests: bool = False,
    allow_existing: bool = False,
    installation: dict[str, Any] | None = None,
    fail_on_error: bool = False,
) -> RegistrationResult:
    """Parse ``path`` and register it. An existing ref needs ``force`` (or ``allow_existing``).

    Unless ``skip_tests``, the pack's tests run first (docs/packs.md); a blocking failure raises 400
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
    async with platform.db.transaction() as session:
        result = await register_parsed(
            session,
            parsed,
            force=force,
            allow_existing=allow_existing,
            installation=installation,
            tests=tests,
            fail_on_error=fail_on_error,
            max_tasks=platform.settings.executor.workflow_max_tasks,
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
    existing = await pack_components.by_ref(session, models.Pack, parsed.pack.ref)
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


async def register_system_packs(platform: Platform) -> list[str]:
    """Register every ``system: true`` pack found directly under ``packs_base_dir``."""
    base = platform.settings.packs_base_dir
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
        result = await register_pack(platform, pack_dir, allow_existing=True, skip_tests=True)
        registered.append(result.pack.ref)
    return registered


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
        pack = await pack_components.create_pack(session, spec.ref, pack_values)
    else:
        pack = existing
        if existing.config and existing.config != spec.config:
            # Operators edit pack config through the API; a re-register keeps their values.
            pack_values["config"] = {**spec.config, **existing.config}
        await pack_components.update_row(session, pack, pack_values)
    result = RegistrationResult(
        pack=pack, created=existing is None, warnings=list(parsed.warnings), skipped=list(parsed.skipped)
    )
    counts = result.counts

    runtime_ids = {}
    for runtime_spec in parsed.runtimes:
        runtime_ids[runtime_spec.ref] = await components.register_runtime(session, pack, runtime_spec, counts)

    trigger_ids: dict[str, int] = {}
    for trigger in parsed.triggers:
        trigger_ids[trigger.ref] = await components.register_trigger(session, pack, trigger, counts)

    action_refs = set()
    for action in parsed.actions:
        if await components.register_action(session, pack, action, counts, result):
            action_refs.add(action.ref)

    sensor_refs = set()
    for sensor in parsed.sensors:
        if await components.register_sensor(session, pack, sensor, counts, result.warnings):
            sensor_refs.add(sensor.ref)

    workflow_refs = await components.register_workflows(
        session, pack, parsed.workflows, counts, result, max_tasks
    )

    rule_refs = set()
    for rule in parsed.rules:
        await components.register_rule(session, pack, rule, counts)
        rule_refs.add(rule.ref)

    policy_refs = set()
    for policy in parsed.policies:
        await components.register_policy(session, pack, policy, counts)
        policy_refs.add(policy.ref)

    for _ in await workflows.remove_missing(session, pack.id, workflow_refs):
        components.count(counts, "workflow", "removed")
    await components.remove_missing(session, pack, models.Policy, policy_refs, counts, "policy")
    await components.remove_missing(session, pack, models.Rule, rule_refs, counts, "rule")
    await components.remove_missing(session, pack, models.Sensor, sensor_refs, counts, "sensor")
    await components.remove_missing(session, pack, models.Action, action_refs, counts, "action")
    await components.remove_missing(session, pack, models.Trigger, set(trigger_ids), counts, "trigger")
    await components.remove_missing(session, pack, models.Runtime, set(runtime_ids), counts, "runtime")
    await pack_components.relink_rules(session)
    return result


async def _environment_runtimes(session: AsyncSession, pack_id: int) -> list[str]:
    """Lower-case names of the runtimes the pack's actions use that need an environment."""
    names = set()
    for row in await pack_components.action_runtimes(session, pack_id):
        config = row.execution_config or {}
        env = (config.get("environment") or {}).get("env_type")
        if (env and env != "none") or config.get("dependencies"):
            names.add(row.name.lower())
    return sorted(names)
