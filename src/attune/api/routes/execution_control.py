"""Cancel, rerun and logs of an execution (Attune extensions, in the style of docs/api.md)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Body, Query, Response
from sqlalchemy.ext.asyncio import AsyncSession

from attune.api.authz import PrincipalDep, check_execution, pack_of, require
from attune.api.deps import AUTH, PlatformDep
from attune.api.routes.executions import execution_response
from attune.api.schemas.common import Data
from attune.api.schemas.execution_control import ExecutionLogs, RerunExecutionRequest
from attune.api.schemas.executions import ExecutionResponse
from attune.db.models import Execution
from attune.db.repos import executions
from attune.operations import control
from attune.workflow.engine import requests

router = APIRouter(prefix="/api/v1", tags=["executions"], dependencies=AUTH)

SOURCE = "api"
TRUNCATION_MARKER = "[OUTPUT TRUNCATED: {stream} exceeded size limit]"


async def _param_schema(session: AsyncSession, execution: Execution) -> object:
    return await executions.action_param_schema(session, execution.action)


@router.post("/executions/{id}/cancel", dependencies=[require("executions", "update", scoped=True)])
async def cancel_execution(
    id: int, platform: PlatformDep, principal: PrincipalDep
) -> Data[ExecutionResponse]:
    """Cancel an execution.

    Before a worker starts it (``requested``/``scheduled``) it becomes ``cancelled`` at once; while it
    runs it becomes ``canceling`` and its worker kills the whole process group, then records
    ``cancelled``. A terminal execution answers 409; a second cancel is harmless.
    """
    async with platform.db.transaction() as session:
        execution = await requests.cancel(
            session,
            id,
            box=platform.secrets,
            source=SOURCE,
            authorize=lambda row: check_execution(principal, row, "update"),
        )
        schema = await _param_schema(session, execution)
    return Data(data=execution_response(execution, schema), message="Execution cancellation requested")


@router.post(
    "/executions/{id}/rerun", status_code=201, dependencies=[require("actions", "execute", scoped=True)]
)
async def rerun_execution(
    id: int,
    principal: PrincipalDep,
    platform: PlatformDep,
    response: Response,
    body: RerunExecutionRequest | None = Body(default=None),
    from_failed: bool | None = Query(
        None,
        description="Workflows only: resume this failed workflow from its failed task(s) instead of "
        "starting a fresh run (default: true for a failed workflow execution, false otherwise)",
    ),
) -> Data[ExecutionResponse]:
    """Run the same action again with the same parameters (secret ones included).

    ``{"parameters": {...}}`` in the body changes some of them: they are merged over the original
    parameters and the result is validated against the action's schema (422 when it fails). The
    new execution's ``original_execution`` points at the first execution of the chain.

    Attune extension for workflows: a *failed* workflow execution is resumed in place by default
    (``from_failed`` true): its failed task(s) run again, what succeeded is kept, the same
    execution goes back to ``running`` and the response is 200 with that execution.
    ``from_failed=true`` on anything but a failed workflow execution is a 409;
    ``from_failed=false`` always starts a fresh run (201), and so does a body with new
    ``parameters`` (a resumed run keeps the parameters it started with).
    """

    def authorize(source: Execution) -> None:
        check_execution(principal, source, "read")
        principal.check(
            "actions", "execute", pack=pack_of(source.action_ref), what=f"execute {source.action_ref}"
        )

    changes = body.parameters if body is not None and body.parameters else {}
    async with platform.db.transaction() as session:
        outcome = await requests.rerun(
            session,
            id,
            changes=changes,
            from_failed=from_failed,
            box=platform.secrets,
            source=SOURCE,
            executor=principal.identity_id,
            authorize=authorize,
        )
        if outcome.resumed:
            response.status_code = 200
            schema = await _param_schema(session, outcome.execution)
            return Data(
                data=execution_response(outcome.execution, schema), message="Workflow rerun from failed tasks"
            )
    assert outcome.action is not None
    return Data(
        data=execution_response(outcome.execution, outcome.action.param_schema),
        message="Execution rerun requested",
    )


def _read_log(path: Path, stream: str) -> tuple[str, bool]:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "", False
    return text, TRUNCATION_MARKER.format(stream=stream) in text


@router.get("/executions/{id}/logs", dependencies=[require("executions", "read", scoped=True)])
async def execution_logs(id: int, platform: PlatformDep, principal: PrincipalDep) -> Data[ExecutionLogs]:
    """The stdout and stderr captured so far (written live by the worker)."""
    async with platform.db.session() as session:
        execution = await executions.get(session, id)
        if execution is None:
            raise control.not_found(id)
        check_execution(principal, execution, "read")
    assert platform.settings.artifacts_dir is not None
    log_dir = platform.settings.artifacts_dir / f"execution_{id}"
    stdout, stdout_truncated = _read_log(log_dir / "stdout.log", "stdout")
    stderr, stderr_truncated = _read_log(log_dir / "stderr.log", "stderr")
    return Data(
        data=ExecutionLogs(
            stdout=stdout, stderr=stderr, stdout_truncated=stdout_truncated, stderr_truncated=stderr_truncated
        )
    )
