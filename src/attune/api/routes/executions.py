"""``/api/v1/executions`` (docs/api.md): manual runs, the execution log and stats.

Secret parameters (``secret: true`` in the action's ``param_schema``) are masked in every
``config`` this module returns. The stored row still holds them, because the worker reads its
parameters from ``execution.config``; moving them out of the row is a separate change.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from attune.api import waiting
from attune.api.authz import Principal, PrincipalDep, check_execution, require
from attune.api.deps import AUTH, PlatformDep
from attune.api.errors import too_many_requests
from attune.api.pagination import PageRequest, fetch_page, make_page, page_a, page_b_executions
from attune.api.schemas.common import Data, Page
from attune.api.schemas.executions import (
    CreateExecutionRequest,
    ExecutionResponse,
    ExecutionStats,
    ExecutionSummary,
    WorkflowTask,
)
from attune.db.models import Execution
from attune.db.repos import executions, permissions
from attune.domain.enums import ExecutionStatus, values
from attune.domain.params import secret_names
from attune.errors import BadRequest, NotFound
from attune.operations import control
from attune.platform import Platform

router = APIRouter(prefix="/api/v1", tags=["executions"], dependencies=AUTH)

SECRET_MASK = "********"
PENDING_STATUSES = (ExecutionStatus.REQUESTED, ExecutionStatus.SCHEDULING, ExecutionStatus.SCHEDULED)


def _flat_schema(param_schema: Any) -> Mapping[str, Any] | None:
    return param_schema if isinstance(param_schema, Mapping) else None


def mask_secrets(config: Any, param_schema: Any) -> Any:
    """``config`` with the value of every secret parameter replaced by ``********``.

    Handles both config forms (docs/packs.md): wrapped ``{"parameters": {…}}`` and flat.
    """
    names = secret_names(_flat_schema(param_schema))
    if not names or not isinstance(config, dict):
        return config
    if isinstance(config.get("parameters"), dict):
        return {**config, "parameters": mask_secrets(config["parameters"], param_schema)}
    return {key: SECRET_MASK if key in names else value for key, value in config.items()}


def _workflow_task(value: Any) -> WorkflowTask | None:
    return WorkflowTask.model_validate(value) if isinstance(value, dict) else None


def _summary(execution: Execution, refs: tuple[str, str] | None = None) -> ExecutionSummary:
    rule_ref, trigger_ref = refs if refs is not None else (None, None)
    return ExecutionSummary(
        id=execution.id,
        action_ref=execution.action_ref,
        status=ExecutionStatus(execution.status),
        parent=execution.parent,
        enforcement=execution.enforcement,
        rule_ref=rule_ref,
        trigger_ref=trigger_ref,
        workflow_task=_workflow_task(execution.workflow_task),
        original_execution=execution.original_execution,
        retry_count=execution.retry_count or 0,
        created=execution.created,
        updated=execution.updated,
    )


def _response(execution: Execution, param_schema: Any) -> ExecutionResponse:
    return ExecutionResponse(
        id=execution.id,
        action=execution.action,
        action_ref=execution.action_ref,
        config=mask_secrets(execution.config, param_schema),
        parent=execution.parent,
        enforcement=execution.enforcement,
        executor=execution.executor,
        status=ExecutionStatus(execution.status),
        result=execution.result,
        workflow_task=_workflow_task(execution.workflow_task),
        started_at=execution.started_at,
        original_execution=execution.original_execution,
        retry_count=execution.retry_count or 0,
        max_retries=execution.max_retries or 0,
        retry_reason=execution.retry_reason,
        worker=execution.worker,
        created=execution.created,
        updated=execution.updated,
    )


def visible(query: Any, principal: Principal) -> Any:
    """An execution query limited to what ``principal`` may read (owner: the executor)."""
    return permissions.restrict(
        query, principal.scope("executions"), owner=Execution.executor, ref_of_pack=Execution.action_ref
    )


def _summaries(rows: Sequence[Execution]) -> list[ExecutionSummary]:
    return [_summary(row) for row in rows]


@router.get("/executions", dependencies=[require("executions", "read", scoped=True)])
async def list_executions(
    platform: PlatformDep,
    principal: PrincipalDep,
    paging: Annotated[PageRequest, Depends(page_b_executions)],
    status: Annotated[ExecutionStatus | None, Query(description="Wins over enforcement")] = None,
    enforcement: Annotated[int | None, Query(description="Enforcement id (ignored with status)")] = None,
    action_ref: Annotated[str | None, Query(description="Exact action ref")] = None,
    pack_name: Annotated[str | None, Query(description="action_ref starts with `<pack_name>.`")] = None,
    rule_ref: Annotated[str | None, Query(description="Exact rule ref of the enforcement")] = None,
    trigger_ref: Annotated[str | None, Query(description="Exact trigger ref of the enforcement")] = None,
    executor: Annotated[int | None, Query(description="Identity that started the run")] = None,
    parent: Annotated[int | None, Query(description="Parent execution id")] = None,
    top_level_only: Annotated[bool, Query(description="Only executions without a parent")] = False,
    original_execution: Annotated[
        int | None,
        Query(description="Attune extension: every attempt of the chain started by this execution"),
    ] = None,
    result_contains: Annotated[
        str | None, Query(description="Case-insensitive substring of the JSON-serialised result")
    ] = None,
) -> Page[ExecutionSummary]:
    """Executions, newest first, with ``rule_ref``/``trigger_ref`` from their enforcement."""
    filters = executions.ExecutionFilters(
        status=status.value if status else None,
        enforcement=enforcement,
        action_ref=action_ref,
        pack_name=pack_name,
        rule_ref=rule_ref,
        trigger_ref=trigger_ref,
        executor=executor,
        parent=parent,
        top_level_only=top_level_only,
        original_execution=original_execution,
    )
    query = visible(executions.list_query(filters), principal)
    async with platform.db.session() as session:
        if result_contains is None:
            rows, total = await fetch_page(session, query, paging)
        else:
            rows, total = await executions.page_with_result_containing(
                session, query, result_contains, offset=paging.offset, limit=paging.limit
            )
        refs = await executions.enforcement_refs(
            session, {row.enforcement for row in rows if row.enforcement is not None}
        )
    items = [_summary(row, refs.get(row.enforcement) if row.enforcement else None) for row in rows]
    return make_page(items, total, paging)


@router.post(
    "/executions/execute", status_code=201, dependencies=[require("actions", "execute", scoped=True)]
)
async def execute(
    body: CreateExecutionRequest, principal: PrincipalDep, platform: PlatformDep
) -> Data[ExecutionResponse]:
    """Run an action by hand: validate its parameters, apply defaults and request the run."""
    async with platform.db.transaction() as session:
        execution, action = await control.run(
            session,
            body.action_ref,
            body.parameters,
            env_vars=body.env_vars,
            executor=principal.identity_id,
            box=platform.secrets,
            authorize=lambda row: principal.check(
                "actions", "execute", pack=row.pack_ref, what=f"execute {row.ref}"
            ),
            fast_path=platform.manual_fast_path,
        )
        schema = _flat_schema(action.param_schema)
    return Data(data=_response(execution, schema))


@router.get("/executions/stats", dependencies=[require("executions", "read")])
async def execution_stats(platform: PlatformDep) -> Data[ExecutionStats]:
    """Counts by status over every execution."""
    async with platform.db.session() as session:
        counts = await executions.count_by_status(session)
    return Data(
        data=ExecutionStats(
            total=sum(counts.values()),
            completed=counts.get(ExecutionStatus.COMPLETED, 0),
            failed=counts.get(ExecutionStatus.FAILED, 0),
            running=counts.get(ExecutionStatus.RUNNING, 0),
            pending=sum(counts.get(status, 0) for status in PENDING_STATUSES),
            cancelled=counts.get(ExecutionStatus.CANCELLED, 0),
            timeout=counts.get(ExecutionStatus.TIMEOUT, 0),
            abandoned=counts.get(ExecutionStatus.ABANDONED, 0),
            paused=counts.get(ExecutionStatus.PAUSED, 0),
        )
    )


@router.get("/executions/status/{status}", dependencies=[require("executions", "read", scoped=True)])
async def executions_by_status(
    status: str,
    platform: PlatformDep,
    principal: PrincipalDep,
    paging: Annotated[PageRequest, Depends(page_a)],
) -> Page[ExecutionSummary]:
    """Executions in one status (the segment is case-insensitive), newest first."""
    wanted = status.lower()
    if wanted not in values(ExecutionStatus):
        raise BadRequest(f"Invalid execution status: {status}")
    async with platform.db.session() as session:
        rows, total = await fetch_page(
            session, visible(executions.by_status_query(wanted), principal), paging
        )
    return make_page(_summaries(rows), total, paging)


async def _read_execution(platform: Platform, id: int, principal: Principal) -> Data[ExecutionResponse]:
    async with platform.db.session() as session:
        execution = await executions.get(session, id)
        if execution is None:
            raise NotFound(f"Execution with ID {id} not found")
        check_execution(principal, execution, "read")
        schema = await executions.param_schema_of(session, execution)
    return Data(data=_response(execution, schema))


@router.get(
    "/executions/{id}",
    dependencies=[require("executions", "read", scoped=True)],
    response_model=Data[ExecutionResponse],
    responses={429: {"description": "Too many waiting requests (`server.max_waiters`); see Retry-After"}},
)
async def get_execution(
    id: int,
    request: Request,
    platform: PlatformDep,
    principal: PrincipalDep,
    wait: Annotated[
        float | None,
        Query(
            ge=0,
            description="Long-poll: answer once the execution is terminal or after this many "
            "seconds (clamped to `server.max_wait_seconds`, default 60)",
        ),
    ] = None,
) -> Data[ExecutionResponse] | JSONResponse:
    """One execution; secret parameters are masked.

    With `?wait=<seconds>` the answer comes as soon as the execution reaches a terminal status
    or when the wait elapses, whichever is first, with the same body (docs/api.md, "Waiting for
    a run"); beyond `server.max_waiters` concurrent waiters: 429 with `Retry-After`.
    """
    if not wait:
        return await _read_execution(platform, id, principal)
    async with contextlib.AsyncExitStack() as stack:
        try:
            await stack.enter_async_context(waiting.waiters_for(request.app.state, platform).slot())
        except waiting.WaitersExhausted as exc:
            # A full house refuses only what would wait: a terminal execution is answered.
            current = await _read_execution(platform, id, principal)
            return current if str(current.data.status) in waiting.TERMINAL else too_many_requests(exc)
        # Subscribed before the first read: a change right after it is not missed.
        subscription = await stack.enter_async_context(
            waiting.watching(
                request.app.state, platform, lambda n: waiting.about_executions(n) and n.entity_id == id
            )
        )
        current = await _read_execution(platform, id, principal)
        if str(current.data.status) in waiting.TERMINAL:
            return current

        async def ended() -> bool:
            nonlocal current
            # An execution deleted meanwhile ends the wait with 404, as a plain read would.
            current = await _read_execution(platform, id, principal)
            return str(current.data.status) in waiting.TERMINAL

        if not await waiting.wait_on(
            subscription, waiting.reports_terminal, ended, waiting.bounded(platform, wait)
        ):
            await ended()
        return current
    raise AssertionError("unreachable")  # pragma: no cover - the stack never swallows


@router.get(
    "/enforcements/{enforcement_id}/executions", dependencies=[require("executions", "read", scoped=True)]
)
async def executions_of_enforcement(
    enforcement_id: int,
    platform: PlatformDep,
    principal: PrincipalDep,
    paging: Annotated[PageRequest, Depends(page_a)],
) -> Page[ExecutionSummary]:
    """Executions spawned by one enforcement (an unknown id gives an empty page)."""
    async with platform.db.session() as session:
        rows, total = await fetch_page(
            session, visible(executions.by_enforcement_query(enforcement_id), principal), paging
        )
    return make_page(_summaries(rows), total, paging)


#: Shared with the execution-control routes (cancel, rerun).
execution_response = _response
