"""Running an action on request (the API's use case), and what the request use cases share.

Cancelling and re-running an execution may reach into a workflow run (its children, its failed
tasks), so they live with the workflow engine: :mod:`attune.workflow.engine.requests`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from attune.db.models import Action, Execution
from attune.db.repos import executions as repo
from attune.domain.crypto import SecretBox
from attune.errors import NotFound

#: The source of the executions a user requests (manual runs and re-runs).
MANUAL_SOURCE = "api-service"


class ManualFastPath(Protocol):
    """Starts a manual run in the transaction that requested it (an executor in the API's
    process, docs/performance.md "The manual-run fast path"): True when it did; False — nothing
    written — when the run goes through the scheduler."""

    async def __call__(self, session: AsyncSession, execution: Execution, action: Action) -> bool: ...


#: ``authorize(execution)`` raises when the caller may not act on the execution.
Authorize = Callable[[Execution], None]


def not_found(execution_id: int) -> NotFound:
    """The 404 of an unknown execution."""
    return NotFound(f"Execution with ID {execution_id} not found")


async def run(
    session: AsyncSession,
    action_ref: str,
    parameters: dict[str, Any] | None,
    *,
    env_vars: dict[str, str] | None,
    executor: int | None,
    box: SecretBox | None,
    authorize: Callable[[Action], None],
    fast_path: ManualFastPath | None = None,
) -> tuple[Execution, Action]:
    """Run an action by hand: validate its parameters, apply defaults and request the run (404 when
    the action is unknown, 422 when the parameters do not fit its schema). ``fast_path`` (an
    executor in this process) may start it in this transaction; else ``ExecutionRequested`` is
    staged for the scheduler."""
    action = await repo.action_by_ref(session, action_ref)
    if action is None:
        raise NotFound(f"Action '{action_ref}' not found")
    authorize(action)
    execution = await repo.request_execution(
        session,
        action,
        parameters,
        box=box,
        source_service=MANUAL_SOURCE,
        executor=executor,
        env_vars=env_vars,
        stage=False,
    )
    if fast_path is None or not await fast_path(session, execution, action):
        repo.stage_requested(session, execution, source_service=MANUAL_SOURCE)
    return execution, action
