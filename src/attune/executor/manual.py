"""The manual-run fast path (docs/performance.md, "The manual-run fast path").

A manual run (``POST /api/v1/executions/execute``: the CLI's ``attune run``, the web UI) used to
commit its ``requested`` execution and stage ``ExecutionRequested``; the scheduler then read the
execution and its action twice (admission, worker choice) and, for a workflow, the workflow
engine a third time in a transaction of its own. When an executor runs in the API's process (the
embedded server) and no policy applies to manual runs of the action, this does the scheduler's
part in the request's own transaction instead, as the rule fast path does for webhooks: a
workflow starts there (its first step, in-process tasks included), an action is dispatched to a
live worker (handed to a local one after the commit). It is all or nothing: the work runs in a
savepoint, and anything that goes wrong rolls it back and leaves the run to the scheduler, as
before. With a policy, no live worker, or in the scaled deployment (no executor in the API's
process) the scheduler decides as before.
"""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession

from attune.db.models import Action, Execution
from attune.executor.enforcements import EnforcementProcessor
from attune.executor.scheduler import Scheduler
from attune.platform import Platform
from attune.workflow.engine import WorkflowEngine, start_workflow

log = logging.getLogger(__name__)


class ManualRuns:
    """:class:`attune.operations.control.ManualFastPath` of an executor in the API's process."""

    def __init__(
        self,
        platform: Platform,
        enforcements: EnforcementProcessor,
        scheduler: Scheduler,
        workflows: WorkflowEngine,
    ) -> None:
        self._platform = platform
        self._enforcements = enforcements
        self._scheduler = scheduler
        self._workflows = workflows

    async def __call__(self, session: AsyncSession, execution: Execution, action: Action) -> bool:
        staged = _lists(session)
        try:
            async with session.begin_nested():
                if not await self._enforcements.manual_policy_free(session, action):
                    return False
                if action.workflow_def is None:
                    return await self._scheduler.dispatch_inline(session, execution)
                ctx = self._workflows.context()
                if not await start_workflow(session, execution, action, ctx):
                    return False
        except Exception:
            # Rolled back to before: what the attempt staged for after the commit goes too, and
            # the scheduler takes the run as if this had not been tried.
            _restore(session, staged)
            await session.refresh(execution)
            log.exception(
                "execution %s: the manual-run fast path failed; the scheduler takes it", execution.id
            )
            return False
        # The engine learns of the run's state, timers and held tasks once they are durable.
        self._platform.on_commit(session, lambda: self._workflows.remember(ctx))
        log.info("execution %s started inline (manual run of workflow %s)", execution.id, action.ref)
        return True


def _lists(session: AsyncSession) -> dict[object, int]:
    """How long each list kept in ``session.info`` is (outbox rows, hand-offs, callbacks)."""
    return {key: len(value) for key, value in session.info.items() if isinstance(value, list)}


def _restore(session: AsyncSession, lengths: dict[object, int]) -> None:
    """Drop what was appended to ``session.info``'s lists since :func:`_lists`."""
    for key, value in list(session.info.items()):
        if isinstance(value, list):
            if key in lengths:
                del value[lengths[key] :]
            else:
                del session.info[key]
