"""Cancel, rerun and logs of an execution (Attune extensions, in the style of api.md §4.7)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from fastapi import APIRouter, Body, Query, Response
from sqlalchemy.ext.asyncio import AsyncSession

from attune import inquiries
from attune.api.authz import PrincipalDep, check_execution, pack_of, require
from attune.api.deps import AUTH, RuntimeDep
from attune.api.routes.executions import execution_response
from attune.api.schemas.common import Data
from attune.api.schemas.execution_control import ExecutionLogs, RerunExecutionRequest
from attune.api.schemas.executions import ExecutionResponse
from attune.bus.messages import MessageType, cancel_routing
from attune.db.models import Action, Execution
from attune.db.outbox import enqueue
from attune.db.repos import runs
from attune.db.types import utcnow
from attune.domain.enums import TERMINAL_EXECUTION_STATUSES, ExecutionStatus
from attune.errors import Conflict, NotFound, ValidationFailed
from attune.runtime import Runtime
from attune.workflow import engine as workflow_engine

router = APIRouter(prefix="/api/v1", tags=["executions"], dependencies=AUTH)

TRUNCATION_MARKER = "[OUTPUT TRUNCATED: {stream} exceeded size limit]"
CANCELLED_RESULT = {"succeeded": False, "error": "Execution was cancelled"}


def _not_found(execution_id: int) -> NotFound:
    return NotFound(f"Execution with ID {execution_id} not found")


async def _param_schema(session: AsyncSession, execution: Execution) -> object:
    if execution.action is None:
        return None
    return await session.scalar(sa.select(Action.param_schema).where(Action.id == execution.action))


@router.post("/executions/{id}/cancel", dependencies=[require("executions", "update", scoped=True)])
async def cancel_execution(id: int, runtime: RuntimeDep, principal: PrincipalDep) -> Data[ExecutionResponse]:
    """Cancel an execution.

    Before a worker starts it (``requested``/``scheduled``) it becomes ``cancelled`` at once; while it
    runs it becomes ``canceling`` and its worker kills the whole process group, then records
    ``cancelled``. A terminal execution answers 409; a second cancel is harmless.
    """
    async with runtime.db.transaction() as session:
        execution = await session.get(Execution, id, with_for_update=not runtime.db.is_sqlite)
        if execution is None:
            raise _not_found(id)
        check_execution(principal, execution, "update")
        status = ExecutionStatus(execution.status)
        if status in TERMINAL_EXECUTION_STATUSES:
            raise Conflict(f"Execution {id} is already {status.value}")
        now = utcnow()
        if status in (ExecutionStatus.REQUESTED, ExecutionStatus.SCHEDULING, ExecutionStatus.SCHEDULED):
            execution.status = ExecutionStatus.CANCELLED.value
            execution.result = CANCELLED_RESULT
            runs.stage_status_changed(
                session, execution, status.value, ExecutionStatus.CANCELLED.value, source_service="api"
            )
            enqueue(
                session,
                MessageType.EXECUTION_COMPLETED,
                {
                    "execution_id": execution.id,
                    "action_id": execution.action or 0,
                    "action_ref": execution.action_ref,
                    "status": ExecutionStatus.CANCELLED.value,
                    "result": CANCELLED_RESULT,
                    "completed_at": now.isoformat(),
                },
                source_service="api",
            )
        elif (
            status in (ExecutionStatus.RUNNING, ExecutionStatus.PAUSED)
            and execution.is_workflow
            and execution.worker is None
        ):
            # A workflow run: its live children are cancelled and it ends ``cancelled`` once they
            # have reported back (services.md §1.15 step 4).
            await workflow_engine.cancel_workflow(session, execution, _workflow_context(runtime))
        elif status is ExecutionStatus.RUNNING and await inquiries.cancel_waiting(session, execution):
            pass  # it was waiting on an inquiry: no process to kill, cancelled at once
        elif status is ExecutionStatus.RUNNING:
            execution.status = ExecutionStatus.CANCELING.value
            if execution.worker is not None:
                enqueue(
                    session,
                    MessageType.EXECUTION_CANCEL,
                    {"execution_id": execution.id, "worker_id": execution.worker},
                    source_service="api",
                    routing=cancel_routing(execution.worker),
                )
        await session.flush()
        schema = await _param_schema(session, execution)
    return Data(data=execution_response(execution, schema), message="Execution cancellation requested")


def _workflow_context(runtime: Runtime) -> workflow_engine.WorkflowContext:
    return workflow_engine.WorkflowContext(box=runtime.secrets, source="api")


@router.post(
    "/executions/{id}/rerun", status_code=201, dependencies=[require("actions", "execute", scoped=True)]
)
async def rerun_execution(
    id: int,
    principal: PrincipalDep,
    runtime: RuntimeDep,
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
    changes = body.parameters if body is not None and body.parameters else {}
    async with runtime.db.transaction() as session:
        source = await session.get(Execution, id, with_for_update=not runtime.db.is_sqlite)
        if source is None:
            raise _not_found(id)
        check_execution(principal, source, "read")
        principal.check(
            "actions", "execute", pack=pack_of(source.action_ref), what=f"execute {source.action_ref}"
        )
        resumable = source.is_workflow and source.status == ExecutionStatus.FAILED.value
        if from_failed and changes:
            raise ValidationFailed("parameters cannot change when a workflow resumes from its failed tasks")
        if from_failed or (from_failed is None and resumable and not changes):
            if not resumable:
                raise Conflict(f"Execution {id} is not a failed workflow execution")
            await workflow_engine.rerun_workflow(session, source, _workflow_context(runtime))
            await session.flush()
            response.status_code = 200
            schema = await _param_schema(session, source)
            return Data(data=execution_response(source, schema), message="Workflow rerun from failed tasks")
        action = await session.get(Action, source.action) if source.action is not None else None
        if action is None:
            action = await session.scalar(sa.select(Action).where(Action.ref == source.action_ref))
        if action is None:
            raise NotFound(f"Action '{source.action_ref}' not found")
        execution = await runs.request_execution(
            session,
            action,
            {**runs.full_parameters(source, runtime.secrets), **changes},
            box=runtime.secrets,
            source_service="api-service",
            executor=principal.identity_id,
            env_vars=source.env_vars,
            original_execution=source.original_execution or source.id,
            retry_reason="manual_retry",
        )
    return Data(data=execution_response(execution, action.param_schema), message="Execution rerun requested")


def _read_log(path: Path, stream: str) -> tuple[str, bool]:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "", False
    return text, TRUNCATION_MARKER.format(stream=stream) in text


@router.get("/executions/{id}/logs", dependencies=[require("executions", "read", scoped=True)])
async def execution_logs(id: int, runtime: RuntimeDep, principal: PrincipalDep) -> Data[ExecutionLogs]:
    """The stdout and stderr captured so far (written live by the worker)."""
    async with runtime.db.session() as session:
        execution = await session.get(Execution, id)
        if execution is None:
            raise _not_found(id)
        check_execution(principal, execution, "read")
    assert runtime.settings.artifacts_dir is not None
    log_dir = runtime.settings.artifacts_dir / f"execution_{id}"
    stdout, stdout_truncated = _read_log(log_dir / "stdout.log", "stdout")
    stderr, stderr_truncated = _read_log(log_dir / "stderr.log", "stderr")
    return Data(
        data=ExecutionLogs(
            stdout=stdout, stderr=stderr, stdout_truncated=stdout_truncated, stderr_truncated=stderr_truncated
        )
    )
