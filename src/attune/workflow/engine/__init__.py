"""Running workflows for real: persistence around the pure conductor (docs/workflows.md "Execution").

The conductor (:mod:`attune.workflow.conductor`) decides; this package loads its state, feeds it
an event and carries out the commands it returns, all in the caller's transaction so the state,
the child executions and the staged messages commit together. Only this package of
``attune.workflow`` touches the database, and only through :mod:`attune.db.repos.workflows`.

* :mod:`.store` — the run state: caches, loading and persisting a run;
  :mod:`.items` — with_items item lists kept in ``workflow_item``;
* :mod:`.commands` — carrying out ``RunTask``/``StartTimer``/``CancelTasks``/``Finish``/``Paused``;
  :mod:`.inline` — tasks of in-process actions run inside the step;
* :mod:`.advance` — starting a run, counting finished children, firing timers;
* :mod:`.control` — cancel, pause and resume; :mod:`.rerun` — re-running a failed run;
* :mod:`.requests` — cancel and re-run of any execution on a user's request (the API's use cases);
* :mod:`.service` — :class:`WorkflowEngine`, the executor's component (batching, timer loop).
"""

from __future__ import annotations

from attune.workflow.engine.advance import (
    advance_child,
    advance_children,
    fire_timer,
    start_workflow,
)
from attune.workflow.engine.commands import cancel_execution
from attune.workflow.engine.control import cancel_workflow, pause_workflow, resume_workflow
from attune.workflow.engine.rerun import rerun_workflow
from attune.workflow.engine.service import WorkflowEngine
from attune.workflow.engine.store import (
    STATE_KEY,
    TIMERS_KEY,
    WorkflowContext,
    WorkflowStateError,
    task_lists,
)

__all__ = [
    "STATE_KEY",
    "TIMERS_KEY",
    "WorkflowContext",
    "WorkflowEngine",
    "WorkflowStateError",
    "advance_child",
    "advance_children",
    "cancel_execution",
    "cancel_workflow",
    "fire_timer",
    "pause_workflow",
    "rerun_workflow",
    "resume_workflow",
    "start_workflow",
    "task_lists",
]
