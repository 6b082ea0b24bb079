"""Running one dispatched execution end to end (docs/packs.md, pipeline contracts).

``scheduled → running`` is claimed atomically (a duplicate or cancelled dispatch claims nothing);
the action, its runtime (and selected version), parameters, secrets and environment are loaded;
the process runs with its own process group, live logs and redaction; and the final status and
result are written with ``ExecutionStatusChanged`` and ``ExecutionCompleted`` staged in the same
transaction.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import secrets
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from attune.db.database import Database, retrying
from attune.db.models import Action, Enforcement, Execution, Pack, RuntimeVersion
from attune.db.models import Runtime as RuntimeRow
from attune.db.repos import action_inputs, executions
from attune.db.repos import outbox as outbox_rows
from attune.db.repos import packs as packs_repo
from attune.domain.enums import ExecutionStatus
from attune.operations import worker as worker_operations
from attune.platform import Platform
from attune.worker import (
    commands,
    context,
    definitions,
    environments,
    interpreters,
    output,
    params,
    process,
    redaction,
    runners,
    st2,
    versions,
)
from attune.worker.runners.inprocess import builtin_for

log = logging.getLogger(__name__)

SOURCE = "worker"
NATIVE = "native"
#: Extra lifetime of the execution token beyond the timeout, so finishing API calls still work.
TOKEN_SLACK_SECONDS = 60
CANCELLED = ExecutionStatus.CANCELLED.value
CANCELLED_ERROR = "Execution was cancelled"
#: Preparations that go on after their run was cancelled, when the caller keeps no set of its own
#: (referenced until they end).
_ABANDONED: set[asyncio.Task[Any]] = set()


class PreparationError(Exception):
    """The execution cannot run; the message becomes the stored error."""


@dataclass
class Plan:
    """Everything needed to start the process of one execution."""

    action_id: int
    output_format: str
    timeout: int
    spec: process.ProcessSpec
    param_file: Path | None = None
    st2: bool = False
    #: The in-process implementation of the action (attune.worker.runners.inprocess), if any.
    builtin: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)


def log_dir_for(platform: Platform, execution_id: int) -> Path:
    """``{artifacts_dir}/execution_{id}``: where the live stdout.log/stderr.log are written."""
    base = platform.settings.artifacts_dir
    assert base is not None  # derived from data_dir by Settings
    return base / f"execution_{execution_id}"


def api_url(platform: Platform) -> str:
    """The API base URL handed to actions: ``server.api_url`` (or ``ATTUNE_API_URL``), else the local port."""
    return platform.settings.api_url


@functools.cache
def _local_prefix() -> str:
    # Without a worker's token (a direct call, as in tests) the prefix is still unique to this
    # process: two processes running the same execution id (two test runs side by side, each with
    # its own database) must never kill each other's action processes.
    return f"local-{os.getpid()}-{secrets.token_hex(4)}"


async def run_execution(
    platform: Platform,
    worker_id: int,
    execution_id: int,
    cancel: asyncio.Event,
    *,
    cookie_prefix: str | None = None,
    background: set[asyncio.Task[Any]] | None = None,
    handed_off: str | None = None,
) -> str | None:
    """Run one dispatched execution; return its final status, or None when it was not ours to run.

    Never raises for action or preparation failures: they end as a ``failed`` execution.
    ``cookie_prefix`` (the worker process's token) marks every process of the run as
    ``<prefix>:<execution id>`` so none survives a timeout, a cancel or the worker's death.
    A preparation that outlives its cancelled run is kept in ``background`` (the worker cancels
    those when it stops). ``handed_off`` is the outbox message id of a dispatch handed over in
    this process without the bus: the claim's transaction deletes that row
    (docs/performance.md, "Hand-off to a local worker").
    """
    # Every database step waits out a database restart instead of failing or losing the run.
    execution = await retrying(
        lambda: claim(platform.db, execution_id, worker_id, handed_off=handed_off),
        what=f"claiming execution {execution_id}",
    )
    if execution is None:
        log.info("execution %s is no longer scheduled on this worker; skipping", execution_id)
        return None
    claimed = execution
    action_id = execution.action or 0
    plan: Plan | None = None
    try:
        try:
            plan = await _prepare_unless_cancelled(platform, claimed, cancel, background)
        except PreparationError as exc:
            return await record(platform.db, claimed, "failed", output.early_failure(str(exc)), action_id)
        except Exception as exc:
            log.exception("preparing execution %s failed", execution_id)
            message = f"Failed to prepare execution context: {exc}"
            return await record(platform.db, claimed, "failed", output.early_failure(message), action_id)
        if plan is None:
            return await record(
                platform.db, claimed, CANCELLED, output.early_failure(CANCELLED_ERROR), action_id
            )
        plan.spec.cookie = f"{cookie_prefix or _local_prefix()}:{execution_id}"
        request = runners.RunRequest(
            execution_id=execution_id,
            action_ref=execution.action_ref,
            output_format=plan.output_format,
            timeout=plan.timeout,
            parameters=plan.parameters,
            spec=plan.spec,
            builtin=plan.builtin,
            st2=plan.st2,
            log_dir=log_dir_for(platform, execution_id),
            cancel=cancel,
        )
        # The one place a runner is chosen: a process (Python ones forked from a warm
        # interpreter), or in-process for core.noop/core.echo.
        runner = runners.select(
            request,
            in_process=platform.settings.worker.in_process_actions,
            python_pool=platform.settings.worker.python_pool,
        )
        ran = await runner.run(request)
        return await record(platform.db, claimed, ran.status, ran.result, plan.action_id)
    finally:
        if plan is not None and plan.param_file is not None:
            plan.param_file.unlink(missing_ok=True)


async def _prepare_unless_cancelled(
    platform: Platform,
    execution: Execution,
    cancel: asyncio.Event,
    background: set[asyncio.Task[Any]] | None,
) -> Plan | None:
    """:func:`prepare`, or None when a cancel request arrives first.

    Preparing may wait minutes for the pack's environment (a virtualenv and its ``pip install``,
    built once and shared by the pack's runs, docs/packs.md); a cancel must not wait for it
    (docs/workflows.md: a workflow ends ``cancelled`` within a second of its children). The
    preparation then goes on in the background so a build in progress is never cut half-way; its
    plan is discarded.
    """
    if cancel.is_set():
        return None
    preparing = asyncio.ensure_future(
        retrying(lambda: prepare(platform, execution), what=f"preparing execution {execution.id}")
    )
    stop = asyncio.ensure_future(cancel.wait())
    try:
        await asyncio.wait({preparing, stop}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        preparing.cancel()
        raise
    finally:
        stop.cancel()
    if preparing.done():
        return preparing.result()
    log.info("execution %s was cancelled while it was being prepared", execution.id)
    keep = _ABANDONED if background is None else background
    keep.add(preparing)
    preparing.add_done_callback(keep.discard)
    preparing.add_done_callback(_discard_plan)
    return None


def _discard_plan(task: asyncio.Task[Plan]) -> None:
    """Drop a plan prepared for a run that was cancelled meanwhile (and its parameter file)."""
    if task.cancelled():
        return
    if task.exception() is not None:
        log.info("preparing a cancelled execution failed: %s", task.exception())
        return
    param_file = task.result().param_file
    if param_file is not None:
        param_file.unlink(missing_ok=True)


async def record(
    db: Database, execution: Execution, status: str, result: dict[str, Any], action_id: int
) -> str | None:
    """:func:`finish`, repeated while the database is unreachable: a result is never dropped."""
    return await retrying(
        lambda: finish(db, execution, status, result, action_id=action_id),
        what=f"recording the result of execution {execution.id}",
    )


async def claim(
    db: Database, execution_id: int, worker_id: int, *, handed_off: str | None = None
) -> Execution | None:
    """Atomically move ``scheduled → running`` for this worker; None when 0 rows changed.

    ``handed_off``: the outbox row of a dispatch handed over in this process, deleted in the
    same transaction whether or not anything was claimed (that dispatch is done with either way).
    """
    async with db.transaction() as session:
        claimed = await worker_operations.claim(session, execution_id, worker_id, source_service=SOURCE)
        if handed_off is not None:
            await outbox_rows.delete_message(session, handed_off)
        return claimed


async def finish(
    db: Database, execution: Execution, status: str, result: dict[str, Any], *, action_id: int
) -> str | None:
    """Write the final status and result in one transaction
    (:func:`attune.operations.worker.record_outcome`); the status written, or None."""
    async with db.transaction() as session:
        return await worker_operations.record_outcome(
            session, execution, status, result, action_id=action_id, source_service=SOURCE
        )


async def cancel_orphan(db: Database, execution_id: int, worker_id: int) -> str | None:
    """Cancel an execution assigned here that no local task runs (e.g. after a worker restart)."""
    async with db.session() as session:
        execution = await executions.get(session, execution_id)
    if execution is None or execution.worker != worker_id:
        return None
    if execution.status != ExecutionStatus.CANCELING.value:
        return None
    result = output.early_failure("Execution was cancelled")
    return await finish(
        db, execution, ExecutionStatus.CANCELLED.value, result, action_id=execution.action or 0
    )


# --------------------------------------------------------------------------- preparation


@dataclass
class _Loaded:
    action: Action
    runtime_row: RuntimeRow | None
    version_rows: Sequence[dict[str, Any]]
    rule_ref: str | None
    trigger_ref: str | None
    keys: context.KeyValues
    pack_dir: Path


async def _load(platform: Platform, execution: Execution) -> _Loaded:
    """Everything a run reads from the database, in one read transaction.

    The action, its runtime and versions come from :mod:`attune.worker.definitions` while their
    stamp is unchanged; keys, the pack's directory and the rule/trigger refs are read every run.
    """
    async with platform.db.session() as session:
        inputs = None
        if execution.action is not None:
            inputs = await action_inputs.run_inputs(session, execution.action, execution.enforcement)
        if inputs is None:
            # The action row is gone (perhaps registered again under another id): by ref, uncached.
            definition = await _read_definition(session, execution, stamp=None)
            storage_path = await packs_repo.storage_path(session, definition.action.pack_ref)
            rule_ref, trigger_ref = await _enforcement_refs(session, execution)
        else:
            definition = await _current_definition(platform.db, session, execution, inputs.stamp)
            storage_path, rule_ref, trigger_ref = inputs.storage_path, inputs.rule_ref, inputs.trigger_ref
        keys = await context.load_key_secrets(session, definition.action, platform.secrets)
    action = definition.action
    pack_dir = platform.settings.pack_directory(action.pack_ref, storage_path)
    return _Loaded(
        action, definition.runtime_row, definition.version_rows, rule_ref, trigger_ref, keys, pack_dir
    )


async def _current_definition(
    db: Database, session: AsyncSession, execution: Execution, stamp: Hashable
) -> definitions.Definition:
    """The cached definition of the execution's action while ``stamp`` matches; else read (and kept)."""
    action_id = execution.action or 0
    found = definitions.cached(db, action_id, stamp)
    if found is not None:
        return found
    definition = await _read_definition(session, execution, stamp=stamp)
    # Without a runtime of its own, the action's runtime is found among all runtimes by file
    # extension, which the stamp does not cover.
    if definition.action.runtime is not None and definition.action.id == action_id:
        definitions.remember(db, definition)
    return definition


async def _read_definition(
    session: AsyncSession, execution: Execution, *, stamp: Hashable | None
) -> definitions.Definition:
    """Read the action, its runtime and its runtime's versions (``stamp``: read just before)."""
    action = await executions.action_for(session, execution)
    if action is None:
        raise PreparationError(
            f"Failed to prepare execution context: action '{execution.action_ref}' not found"
        )
    runtime_row = await _runtime_for(session, action)
    version_rows: tuple[dict[str, Any], ...] = ()
    if runtime_row is not None:
        rows = await action_inputs.versions_of(session, runtime_row.id)
        version_rows = tuple(_version_dict(row) for row in rows)
    return definitions.Definition(stamp, action, runtime_row, version_rows)


async def _enforcement_refs(session: AsyncSession, execution: Execution) -> tuple[str | None, str | None]:
    if execution.enforcement is None:
        return None, None
    enforcement = await session.get(Enforcement, execution.enforcement)
    if enforcement is None:
        return None, None
    return enforcement.rule_ref, enforcement.trigger_ref


async def _runtime_for(session: AsyncSession, action: Action) -> RuntimeRow | None:
    """The action's runtime; without one, the first runtime whose file extension matches."""
    if action.runtime is not None:
        row = await session.get(RuntimeRow, action.runtime)
        if row is None:
            raise PreparationError(f"Action execution failed: Runtime {action.runtime} not found")
        return row
    suffix = Path(action.entrypoint.strip()).suffix.lower().lstrip(".")
    if not suffix:
        return None
    for row in await action_inputs.runtimes(session):
        interpreter = commands.section(row.execution_config or {}, "interpreter")
        extension = interpreter.get("file_extension")
        if isinstance(extension, str) and extension.strip().lower().lstrip(".") == suffix:
            return row
    return None


def _version_dict(row: RuntimeVersion) -> dict[str, Any]:
    return {
        "id": row.id,
        "version": row.version,
        "available": row.available,
        "is_default": row.is_default,
        "execution_config": row.execution_config,
        "distributions": row.distributions,
    }


def runtime_dir_name(runtime_row: RuntimeRow | None) -> str:
    """The runtime part of an environment directory name: ``lower(runtime.name)`` (docs/packs.md)."""
    return runtime_row.name.lower() if runtime_row is not None else NATIVE


async def prepare(platform: Platform, execution: Execution) -> Plan:
    """Resolve everything the process needs; raises PreparationError with the stored message."""
    settings = platform.settings
    loaded = await _load(platform, execution)
    action = loaded.action
    config: dict[str, Any] = dict(loaded.runtime_row.execution_config or {}) if loaded.runtime_row else {}
    version: str | None = None
    if loaded.version_rows:
        choice = versions.select_version(loaded.version_rows, action.runtime_version_constraint)
        if choice is not None:
            version = choice.version
            # ``node20`` may not exist where ``node`` is Node.js 20: run what verification found.
            config = await interpreters.resolve(choice.execution_config, choice.distributions)
        else:
            log.warning(
                "no available version of runtime %s matches %r for %s; using the runtime's own config",
                runtime_dir_name(loaded.runtime_row),
                action.runtime_version_constraint,
                action.ref,
            )
    pack_dir = loaded.pack_dir
    pack_config = None
    if st2.is_st2(config):
        async with platform.db.session() as session:
            pack_config = await pack_config_of(session, action.pack)
    env_dir = environments.env_dir_for(
        settings.envs_dir, action.pack_ref, runtime_dir_name(loaded.runtime_row), version
    )
    if pack_dir.is_dir() and environments.needs_environment(config, pack_dir):
        try:
            # Waits on the per-environment lock when start-up is still building it.
            report = await environments.ensure_environment(pack_dir, env_dir, config)
            if report.error:
                log.warning("environment %s for %s: %s", env_dir, action.ref, report.error)
        except Exception as exc:
            log.warning(
                "environment %s for %s is not ready (%s); using the system interpreter",
                env_dir,
                action.ref,
                exc,
            )

    try:
        parameters = executions.full_parameters(execution, platform.secrets)
        secret_params = executions.reveal_secrets(execution.secret_params, platform.secrets)
    except Exception as exc:
        raise PreparationError(
            f"Failed to prepare execution context: cannot read secret parameters: {exc}"
        ) from exc
    fmt = (action.parameter_format or "json").lower()
    delivery = (action.parameter_delivery or "stdin").lower()
    try:
        params_text = params.format_params(parameters, fmt)
    except ValueError as exc:
        raise PreparationError(f"Failed to prepare execution context: {exc}") from exc

    if st2.is_st2(config):
        delivery = "stdin"
        params_text = st2.stdin_document(parameters, pack_config, action.param_schema)
        command = st2.build_command(config, pack_dir, env_dir, action.entrypoint)
    else:
        try:
            command = commands.build_command(
                config=config,
                pack_dir=pack_dir,
                env_dir=env_dir,
                entrypoint=action.entrypoint,
                # A pack action's entry point with spaces is an inline shell command (docs/packs.md);
                # a single word names a file, and a missing file stays a clear error.
                inline_allowed=action.is_adhoc or any(ch.isspace() for ch in action.entrypoint.strip()),
            )
        except commands.CommandError as exc:
            raise PreparationError(f"Action execution failed: {exc}") from exc

    # A workflow task's ``timeout`` (workflow_task.timeout_seconds) overrides the action's own.
    task_link = execution.workflow_task if isinstance(execution.workflow_task, dict) else {}
    task_timeout = task_link.get("timeout_seconds")
    timeout = (
        task_timeout
        if isinstance(task_timeout, int) and not isinstance(task_timeout, bool) and task_timeout > 0
        else action.timeout_seconds or settings.worker.task_timeout
    )
    param_file = params.write_param_file(params_text) if delivery == "file" else None
    try:
        token, _exp = platform.tokens.issue(
            execution.executor or 0,
            f"execution:{execution.id}",
            "execution",
            ttl=timeout + TOKEN_SLACK_SECONDS,
            # The action travels with the execution id: the API hands the token only that
            # action's keys (docs/security.md "Execution and sensor tokens").
            metadata={"execution_id": execution.id, "action_ref": action.ref},
        )
        attune_env = context.attune_variables(
            execution_id=execution.id,
            action_ref=action.ref,
            api_url=api_url(platform),
            api_token=token,
            rule_ref=loaded.rule_ref,
            trigger_ref=loaded.trigger_ref,
            config=execution.config,
            delivery=delivery,
            fmt=fmt,
            param_file=str(param_file) if param_file is not None else None,
        )
        env = context.build_environment(os.environ, attune_env, command.env, execution.env_vars)
        spec = process.ProcessSpec(
            argv=command.argv,
            cwd=command.cwd,
            env=env,
            stdin=params.build_stdin(params_text, delivery=delivery, secrets=loaded.keys.values),
            timeout=timeout,
            max_stdout=settings.worker.max_stdout_bytes,
            max_stderr=settings.worker.max_stderr_bytes,
            log_dir=log_dir_for(platform, execution.id),
            # Only secrets are masked: secret parameters and encrypted keys, never plain keys.
            redact=redaction.secret_strings({**secret_params, **_prefixed(loaded.keys.secrets)}),
        )
    except BaseException:
        if param_file is not None:
            param_file.unlink(missing_ok=True)
        raise
    return Plan(
        action_id=action.id,
        output_format=(action.output_format or "text").lower(),
        timeout=timeout,
        spec=spec,
        param_file=param_file,
        st2=st2.is_st2(config),
        builtin=builtin_for(action.ref, action.pack_ref, action.entrypoint),
        parameters=parameters,
    )


async def pack_config_of(session: AsyncSession, pack_id: int) -> Any:
    """The pack's configuration (st2 actions receive it as ``self.config``)."""
    pack = await session.get(Pack, pack_id)
    return pack.config if pack is not None else {}


def _prefixed(key_secrets: dict[str, str]) -> dict[str, str]:
    # Keys and secret parameters may share names; keep both values for redaction.
    return {f"key:{name}": value for name, value in key_secrets.items()}
