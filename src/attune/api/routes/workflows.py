"""Workflow definitions, workflow files and workflow run control (docs/api.md).

Creating a workflow and its companion action is one transaction (no
orphan rows); workflow files are saved as ``{pack_dir}/workflows/<name>.yaml``, exactly where pack
registration and ``POST /packs/{ref}/workflows/sync`` read them, and a name that would leave the
pack directory is rejected with 400.

Attune extensions (workflow runs, keyed by the workflow's execution id):

- ``GET /executions/{id}/workflow`` — the orchestration state: status, paused flag, task lists,
  variables and, per task, its status and child executions.
- ``POST /executions/{id}/pause`` — stop dispatching new tasks (running children finish);
  409 unless the execution is a running, unpaused workflow.
- ``POST /executions/{id}/resume`` — continue a paused workflow; 409 unless paused.
- ``POST /executions/{id}/rerun`` (in execution_control) resumes a failed workflow from its
  failed task(s) by default; see that route.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Depends, Query
from sqlalchemy.ext.asyncio import AsyncSession

from attune.api.authz import PrincipalDep, check_execution, check_pack, in_readable_packs, require
from attune.api.deps import AUTH, PlatformDep
from attune.api.pagination import PageRequest, fetch_page, make_page, page_a
from attune.api.schemas.common import Data, Page, Success
from attune.api.schemas.workflows import (
    CreateWorkflow,
    PackWorkflowSyncResponse,
    PackWorkflowValidationResponse,
    SaveWorkflowFile,
    SyncedWorkflow,
    UpdateWorkflow,
    WorkflowResponse,
    WorkflowRunState,
    WorkflowSummary,
    WorkflowTaskRun,
    WorkflowTaskState,
)
from attune.db.models import Execution, Pack, WorkflowDefinition, WorkflowExecution
from attune.db.repos import actions, locking
from attune.db.repos import actions as actions_repo
from attune.db.repos import workflows as repo
from attune.domain import safe_yaml
from attune.errors import BadRequest, Conflict, NotFound
from attune.packs.parser import MAX_WORKFLOW_BYTES
from attune.platform import Platform
from attune.workflow import engine
from attune.workflow.conductor import WorkflowState
from attune.workflow.engine import definitions
from attune.workflow.spec import (
    DEFAULT_MAX_TASKS,
    WorkflowSpec,
    WorkflowValidationError,
    parse_workflow,
    validate_workflow,
)

router = APIRouter(prefix="/api/v1", tags=["workflows"], dependencies=AUTH)

PageA = Annotated[PageRequest, Depends(page_a)]

#: A workflow file name: the ref suffix, so it can never contain a path separator or ``..``.
_FILE_NAME = re.compile(r"^[a-z0-9_][a-z0-9_-]*$")


# -- helpers ---------------------------------------------------------------------------------------


async def _get(session: AsyncSession, ref: str, action: str = "read") -> WorkflowDefinition:
    row = await repo.by_ref(session, ref)
    if row is None:
        raise NotFound(f"Workflow '{ref}' not found")
    check_pack("workflows", action, row.pack_ref, f"{action} workflow '{ref}'")
    return row


async def _pack(session: AsyncSession, pack_ref: str) -> Pack:
    pack = await actions.pack_by_ref(session, pack_ref)
    if pack is None:
        raise NotFound(f"Pack '{pack_ref}' not found")
    return pack


def _parse(
    definition: Any,
    *,
    ref: str,
    label: str | None = None,
    version: str | None = None,
    max_tasks: int = DEFAULT_MAX_TASKS,
) -> WorkflowSpec:
    """Parse a definition given in a request; ``ref``/``label``/``version`` fill missing keys.

    Errors name the task and field (422 VALIDATION_ERROR).
    """
    if not isinstance(definition, dict):
        raise WorkflowValidationError(["definition must be an object (the workflow document)"])
    doc = dict(definition)
    doc.setdefault("ref", ref)
    if label is not None:
        doc.setdefault("label", label)
    if version is not None:
        doc.setdefault("version", version)
    return parse_workflow(doc, ref=ref, max_tasks=max_tasks)


def _values(spec: WorkflowSpec, body: CreateWorkflow | SaveWorkflowFile) -> repo.DefinitionValues:
    """Body fields win over the document's own (the document is stored normalised)."""
    base = definitions.definition_values(spec)
    return repo.DefinitionValues(
        label=body.label,
        description=body.description if body.description is not None else base.description,
        version=body.version,
        param_schema=body.param_schema if body.param_schema is not None else base.param_schema,
        out_schema=body.out_schema if body.out_schema is not None else base.out_schema,
        definition=base.definition,
        tags=body.tags if body.tags is not None else base.tags,
        enabled=body.enabled if body.enabled is not None else True,
    )


def _workflow_file(platform: Platform, pack: Pack, name: str) -> Path:
    """``{pack_dir}/workflows/<name>.yaml``; 400 when ``name`` would leave the pack directory."""
    if not _FILE_NAME.fullmatch(name):
        raise BadRequest(
            f"Invalid workflow name '{name}': use lowercase letters, digits, '_' and '-' (no path separators)"
        )
    base = platform.settings.pack_directory(pack.ref, pack.storage_path).resolve()
    target = (base / "workflows" / f"{name}.yaml").resolve()
    if not target.is_relative_to(base / "workflows"):
        raise BadRequest(f"Invalid workflow name '{name}': the file must stay inside the pack")
    return target


def _write_file(path: Path, spec: WorkflowSpec, values: repo.DefinitionValues) -> None:
    document = {**values.definition, "label": values.label, "version": values.version}
    if values.description is not None:
        document["description"] = values.description
    text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    if len(text.encode()) > MAX_WORKFLOW_BYTES:
        raise BadRequest("Workflow file would be larger than 1 MiB")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _pack_workflow_files(platform: Platform, pack: Pack) -> list[tuple[str, Path]]:
    """(name, path) of every workflow file of the pack, in the locations registration reads."""
    base = platform.settings.pack_directory(pack.ref, pack.storage_path)
    found: list[tuple[str, Path]] = []
    directory = base / "workflows"
    if directory.is_dir():
        found += [
            (p.name.rsplit(".", 1)[0], p)
            for p in sorted(directory.iterdir())
            if p.suffix in (".yaml", ".yml")
        ]
    legacy = base / "actions" / "workflows"
    if legacy.is_dir():
        for p in sorted(legacy.iterdir()):
            for suffix in (".workflow.yaml", ".workflow.yml"):
                if p.name.endswith(suffix):
                    found.append((p.name[: -len(suffix)], p))
    return found


def _load_file(path: Path) -> Any:
    if path.stat().st_size > MAX_WORKFLOW_BYTES:
        raise WorkflowValidationError(["workflow file is larger than 1 MiB"])
    try:
        return safe_yaml.load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise WorkflowValidationError([f"YAML syntax error: {exc}"]) from exc


async def _known_actions(session: AsyncSession) -> set[str]:
    return await actions_repo.all_refs(session)


# -- definitions -----------------------------------------------------------------------------------


@router.get("/workflows", dependencies=[require("workflows", "read", scoped=True)])
async def list_workflows(
    platform: PlatformDep,
    page: PageA,
    tags: str | None = Query(None, description="Comma-separated; a workflow with any of them matches"),
    enabled: bool | None = Query(None),
    search: str | None = Query(None, description="Case-insensitive substring of label or description"),
    pack_ref: str | None = Query(None),
) -> Page[WorkflowSummary]:
    """List workflow definitions, ordered by ref (pagination family A)."""
    wanted = [t.strip() for t in tags.split(",") if t.strip()] if tags else []
    query = in_readable_packs(
        repo.list_query(pack_ref=pack_ref, tags=wanted, enabled=enabled, search=search),
        "workflows",
        WorkflowDefinition.pack_ref,
    )
    async with platform.db.session() as session:
        if wanted:
            rows = [r for r in (await session.execute(query)).scalars() if repo.has_any_tag(r, wanted)]
            total = len(rows)
            rows = rows[page.offset : page.offset + page.limit]
        else:
            found, total = await fetch_page(session, query, page)
            rows = list(found)
    return make_page([WorkflowSummary.model_validate(_summary(r)) for r in rows], total, page)


def _summary(row: WorkflowDefinition) -> dict[str, Any]:
    data = {c: getattr(row, c) for c in row.__table__.columns.keys()}
    data["tags"] = list(row.tags or [])
    return data


def _response(row: WorkflowDefinition) -> WorkflowResponse:
    return WorkflowResponse.model_validate(_summary(row))


@router.post("/workflows", status_code=201, dependencies=[require("workflows", "create", scoped=True)])
async def create_workflow(body: CreateWorkflow, platform: PlatformDep) -> Data[WorkflowResponse]:
    """Create a workflow and its companion action (same ref, ``entrypoint = "workflow"``).

    Both rows are created in one transaction: if the companion cannot be created (the ref is not
    `pack.name`, or a plain action holds it) nothing is stored. The definition is validated and
    stored normalised; errors name the task and field (422).
    """
    check_pack("workflows", "create", body.pack_ref, f"create workflows in pack '{body.pack_ref}'")
    async with platform.db.transaction() as session:
        pack = await _pack(session, body.pack_ref)
        actions.check_ref_format("workflow", body.ref)
        if await repo.by_ref(session, body.ref) is not None:
            raise Conflict(f"Workflow with ref '{body.ref}' already exists")
        spec = _parse(
            body.definition,
            ref=body.ref,
            label=body.label,
            version=body.version,
            max_tasks=platform.settings.executor.workflow_max_tasks,
        )
        row, _ = await repo.save_definition(
            session,
            pack,
            body.ref,
            _values(spec, body),
            entrypoint=repo.API_ENTRYPOINT,
            replace_existing=False,
        )
        await session.refresh(row)
        data = _response(row)
    return Data(data=data, message="Workflow created successfully")


@router.get("/workflows/{ref}", dependencies=[require("workflows", "read", scoped=True)])
async def get_workflow(ref: str, platform: PlatformDep) -> Data[WorkflowResponse]:
    """One workflow definition by ref."""
    async with platform.db.session() as session:
        return Data(data=_response(await _get(session, ref, "read")))


@router.put("/workflows/{ref}", dependencies=[require("workflows", "update", scoped=True)])
async def update_workflow(ref: str, body: UpdateWorkflow, platform: PlatformDep) -> Data[WorkflowResponse]:
    """Update a workflow (absent/null fields unchanged) and its companion action."""
    async with platform.db.transaction() as session:
        row = await _get(session, ref, "update")
        changes: dict[str, Any] = {
            "label": body.label,
            "description": body.description,
            "version": body.version,
            "param_schema": body.param_schema,
            "out_schema": body.out_schema,
            "tags": body.tags,
            "enabled": body.enabled,
        }
        if body.definition is not None:
            spec = _parse(
                body.definition,
                ref=ref,
                label=body.label or row.label,
                version=body.version or row.version,
                max_tasks=platform.settings.executor.workflow_max_tasks,
            )
            changes["definition"] = definitions.definition_values(spec).definition
        if actions.apply_changes(row, changes):
            await session.flush()
            pack = await session.get(Pack, row.pack)
            assert pack is not None
            await repo.save_companion(session, row, pack)
            await session.refresh(row)
        data = _response(row)
    return Data(data=data, message="Workflow updated successfully")


@router.delete("/workflows/{ref}", dependencies=[require("workflows", "delete", scoped=True)])
async def delete_workflow(ref: str, platform: PlatformDep) -> Success:
    """Delete a workflow, its companion action and its workflow executions."""
    async with platform.db.transaction() as session:
        await repo.delete_definition(session, await _get(session, ref, "delete"))
    return Success(message=f"Workflow '{ref}' deleted successfully")


# -- files -----------------------------------------------------------------------------------------


async def _save_file(
    platform: Platform, session: AsyncSession, pack: Pack, body: SaveWorkflowFile, *, replace: bool
) -> tuple[WorkflowDefinition, bool]:
    ref = f"{pack.ref}.{body.name}"
    path = _workflow_file(platform, pack, body.name)
    spec = _parse(
        body.definition,
        ref=ref,
        label=body.label,
        version=body.version,
        max_tasks=platform.settings.executor.workflow_max_tasks,
    )
    values = _values(spec, body)
    row, created = await repo.save_definition(
        session, pack, ref, values, entrypoint=repo.file_entrypoint(body.name), replace_existing=replace
    )
    await session.flush()
    # Written last: a failure above leaves no file behind; a failure to write rolls the rows back.
    _write_file(path, spec, values)
    await session.refresh(row)
    return row, created


@router.post(
    "/packs/{pack_ref}/workflow-files",
    status_code=201,
    dependencies=[require("workflows", "create", scoped=True)],
)
async def create_workflow_file(
    pack_ref: str, body: SaveWorkflowFile, platform: PlatformDep
) -> Data[WorkflowResponse]:
    """Save ``{pack_dir}/workflows/<name>.yaml`` and register it (ref ``<pack_ref>.<name>``)."""
    check_pack("workflows", "create", pack_ref, f"create workflows in pack '{pack_ref}'")
    async with platform.db.transaction() as session:
        pack = await _pack(session, pack_ref)
        ref = f"{pack.ref}.{body.name}"
        if await repo.by_ref(session, ref) is not None:
            raise Conflict(f"Workflow with ref '{ref}' already exists")
        row, _ = await _save_file(platform, session, pack, body, replace=False)
        data = _response(row)
    return Data(data=data, message="Workflow file saved and synced successfully")


@router.put("/workflows/{ref}/file", dependencies=[require("workflows", "update", scoped=True)])
async def update_workflow_file(
    ref: str, body: SaveWorkflowFile, platform: PlatformDep
) -> Data[WorkflowResponse]:
    """Rewrite the workflow's file and its definition; ``<pack_ref>.<name>`` must equal ``ref`` (400)."""
    async with platform.db.transaction() as session:
        await _get(session, ref, "update")
        pack = await _pack(session, body.pack_ref)
        if f"{pack.ref}.{body.name}" != ref:
            raise BadRequest(
                f"pack_ref and name ('{pack.ref}.{body.name}') must match the workflow ref '{ref}'"
            )
        row, _ = await _save_file(platform, session, pack, body, replace=True)
        data = _response(row)
    return Data(data=data, message="Workflow file updated and synced successfully")


@router.get("/packs/{pack_ref}/workflows", dependencies=[require("workflows", "read", scoped=True)])
async def list_pack_workflows(pack_ref: str, platform: PlatformDep, page: PageA) -> Page[WorkflowSummary]:
    """The workflows of one pack, ordered by ref."""
    async with platform.db.session() as session:
        await _pack(session, pack_ref)
        rows, total = await fetch_page(
            session,
            in_readable_packs(repo.list_query(pack_ref=pack_ref), "workflows", WorkflowDefinition.pack_ref),
            page,
        )
    return make_page([WorkflowSummary.model_validate(_summary(r)) for r in rows], total, page)


@router.post("/packs/{pack_ref}/workflows/sync", dependencies=[require("workflows", "update")])
async def sync_pack_workflows(pack_ref: str, platform: PlatformDep) -> Data[PackWorkflowSyncResponse]:
    """Register every workflow file of the pack; a file that fails is reported and skipped.

    Semantic problems (docs/workflows.md) are returned as warnings of the workflow.
    """
    loaded = 0
    synced: list[SyncedWorkflow] = []
    errors: list[str] = []
    async with platform.db.transaction() as session:
        pack = await _pack(session, pack_ref)
        known = await _known_actions(session)
        for name, path in _pack_workflow_files(platform, pack):
            ref = f"{pack.ref}.{name}"
            rel = path.relative_to(platform.settings.pack_directory(pack.ref, pack.storage_path)).as_posix()
            try:
                spec = parse_workflow(
                    _load_file(path), ref=ref, max_tasks=platform.settings.executor.workflow_max_tasks
                )
            except WorkflowValidationError as exc:
                errors.append(f"{rel}: {'; '.join(exc.errors)}")
                continue
            loaded += 1
            known.add(ref)
            warnings = validate_workflow(spec, known_actions=known.__contains__)
            try:
                async with session.begin_nested():
                    row, created = await repo.save_definition(
                        session,
                        pack,
                        ref,
                        definitions.definition_values(spec),
                        entrypoint=rel.removeprefix("actions/"),
                    )
            except Conflict as exc:
                errors.append(f"{rel}: {exc.message}")
                continue
            synced.append(
                SyncedWorkflow(ref_name=ref, created=created, workflow_def_id=row.id, warnings=warnings)
            )
    data = PackWorkflowSyncResponse(
        pack_ref=pack_ref, loaded_count=loaded, registered_count=len(synced), workflows=synced, errors=errors
    )
    return Data(data=data, message="Pack workflows synced successfully")


@router.post("/packs/{pack_ref}/workflows/validate", dependencies=[require("workflows", "read")])
async def validate_pack_workflows(
    pack_ref: str, platform: PlatformDep
) -> Data[PackWorkflowValidationResponse]:
    """Parse and semantically validate every workflow file of the pack without storing anything."""
    errors: dict[str, list[str]] = {}
    count = 0
    async with platform.db.session() as session:
        pack = await _pack(session, pack_ref)
        known = await _known_actions(session)
    for name, path in _pack_workflow_files(platform, pack):
        ref = f"{pack.ref}.{name}"
        count += 1
        try:
            spec = parse_workflow(
                _load_file(path), ref=ref, max_tasks=platform.settings.executor.workflow_max_tasks
            )
        except WorkflowValidationError as exc:
            errors[ref] = list(exc.errors)
            continue
        problems = validate_workflow(spec, known_actions=lambda r: r in known)
        if not spec.ref.startswith(f"{pack.ref}."):
            problems.append(f"workflow ref '{spec.ref}' must start with '{pack.ref}.'")
        if problems:
            errors[ref] = problems
    data = PackWorkflowValidationResponse(
        pack_ref=pack_ref,
        validated_count=count,
        error_count=sum(len(v) for v in errors.values()),
        errors=errors,
    )
    return Data(data=data, message="Pack workflows validated")


# -- workflow runs ---------------------------------------------------------------------------------


async def _execution(session: AsyncSession, execution_id: int, *, lock: bool = False) -> Execution:
    if lock:
        execution = await locking.get_locked(session, Execution, execution_id)
    else:
        execution = await session.get(Execution, execution_id)
    if execution is None:
        raise NotFound(f"Execution with ID {execution_id} not found")
    return execution


async def run_state(session: AsyncSession, execution_id: int) -> WorkflowRunState:
    """The orchestration state of workflow execution ``execution_id`` (404 when it has none)."""
    row = await repo.execution_state(session, execution_id)
    if row is None:
        raise NotFound(f"Execution {execution_id} has no workflow state")
    definition = await session.get(WorkflowDefinition, row.workflow_def)
    variables = row.variables if isinstance(row.variables, dict) else {}
    raw = variables.get(engine.STATE_KEY)
    state = WorkflowState.from_dict(raw) if isinstance(raw, dict) else WorkflowState()
    runs: dict[str, list[WorkflowTaskRun]] = {}
    for child in await repo.children(session, row.id):
        link = child.workflow_task if isinstance(child.workflow_task, dict) else {}
        runs.setdefault(child.workflow_task_name or "", []).append(
            WorkflowTaskRun(
                execution_id=child.id,
                task_index=link.get("task_index"),
                status=child.status,  # type: ignore[arg-type]
                retry_count=int(link.get("retry_count") or 0),
            )
        )
    names = list(state.tasks) + [n for n in runs if n not in state.tasks]
    tasks = [
        WorkflowTaskState(
            name=name,
            status=str((state.tasks.get(name) or {}).get("status", "pending")),
            executions=runs.get(name, []),
        )
        for name in names
    ]
    return WorkflowRunState(
        id=row.id,
        execution=row.execution,
        workflow_def=row.workflow_def,
        workflow_ref=definition.ref if definition is not None else "",
        status=row.status,  # type: ignore[arg-type]
        paused=row.paused,
        pause_reason=row.pause_reason,
        error_message=row.error_message,
        current_tasks=list(row.current_tasks or []),
        completed_tasks=list(row.completed_tasks or []),
        failed_tasks=list(row.failed_tasks or []),
        skipped_tasks=list(row.skipped_tasks or []),
        variables=dict(state.vars),
        tasks=tasks,
        created=row.created,
        updated=row.updated,
    )


@router.get("/executions/{id}/workflow", dependencies=[require("executions", "read", scoped=True)])
async def get_workflow_run(id: int, platform: PlatformDep, principal: PrincipalDep) -> Data[WorkflowRunState]:
    """Attune extension: the orchestration state of a workflow execution (tasks and statuses)."""
    async with platform.db.session() as session:
        check_execution(principal, await _execution(session, id), "read")
        return Data(data=await run_state(session, id))


def _context(platform: Platform) -> engine.WorkflowContext:
    return engine.WorkflowContext(box=platform.secrets, source="api")


@router.post("/executions/{id}/pause", dependencies=[require("executions", "update", scoped=True)])
async def pause_workflow_run(
    id: int, platform: PlatformDep, principal: PrincipalDep
) -> Data[WorkflowRunState]:
    """Attune extension: pause a running workflow (no new tasks start; running ones finish). 409
    unless the execution is a running, unpaused workflow."""
    async with platform.db.transaction() as session:
        execution = await _execution(session, id)
        check_execution(principal, execution, "update")
        await engine.pause_workflow(session, execution, _context(platform))
        await session.flush()
        data = await run_state(session, id)
    return Data(data=data, message="Workflow pause requested")


@router.post("/executions/{id}/resume", dependencies=[require("executions", "update", scoped=True)])
async def resume_workflow_run(
    id: int, platform: PlatformDep, principal: PrincipalDep
) -> Data[WorkflowRunState]:
    """Attune extension: resume a paused workflow. 409 unless it is paused."""
    async with platform.db.transaction() as session:
        execution = await _execution(session, id)
        check_execution(principal, execution, "update")
        await engine.resume_workflow(session, execution, _context(platform))
        await session.flush()
        data = await run_state(session, id)
    return Data(data=data, message="Workflow resumed")


async def workflow_row(session: AsyncSession, execution_id: int) -> WorkflowExecution | None:
    """The orchestration row of an execution, if it is a workflow run."""
    return await repo.execution_state(session, execution_id)
