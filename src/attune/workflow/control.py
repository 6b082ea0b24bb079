"""Workflow control for the conductor: cancel, pause, resume and re-run (docs/workflows.md "Control").

Functions of one conductor step (``attune.workflow.conductor``); pure like it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from attune.workflow.events import CancelTasks
from attune.workflow.records import ACTIVE, TaskStatus, WorkflowStatus, set_status, set_workflow_status

if TYPE_CHECKING:
    from attune.workflow.conductor import Step

__all__ = ["cancel", "pause", "proceed", "rerun", "resume"]

_RERUNNABLE = frozenset({"failed", "timeout", "cancelled"})


def cancel(step: Step) -> None:
    state = step.state
    state.status = set_workflow_status(state.status, WorkflowStatus.CANCELING)
    state.queued.clear()
    running: list[tuple[str, int | None]] = []
    for name, record in state.tasks.items():
        if record["status"] not in ACTIVE:
            continue
        kind = record.get("kind")
        if kind == "items" and record["status"] == "running":
            idle = set(record["waiting"]) | set(record["redo"])
            for index in record["waiting"]:
                step.item_done(name, index, "cancelled", None)
            record["waiting"], record["redo"] = [], []
            running.extend(
                (name, index)
                for index in range(record["next"])
                if record["statuses"][index] is None and index not in idle
            )
        elif kind != "parallel" and record["status"] == "running":
            running.append((name, None))
        elif kind != "parallel":
            set_status(record, TaskStatus.CANCELLED)
    if running:
        step.commands.append(CancelTasks(running))


def pause(step: Step) -> None:
    if step.state.status == "running":
        step.state.status = set_workflow_status(step.state.status, WorkflowStatus.PAUSING)


def resume(step: Step) -> None:
    state = step.state
    if state.status not in ("paused", "pausing"):
        return
    state.status = set_workflow_status(state.status, WorkflowStatus.RUNNING)
    proceed(step)


def proceed(step: Step) -> None:
    """Start what waits in a running workflow: queued runs in their order (a pause's, or those a
    step's room held back), then the items of running with_items tasks, as room allows."""
    state = step.state
    if state.status != "running":
        return
    queued, state.queued = state.queued, []
    for name, index, kind in queued:
        record = state.tasks.get(name)
        if record is None:
            continue
        if kind == "begin":
            step.begin(name)
        else:
            if index is not None and index in record.get("waiting", []):
                record["waiting"].remove(index)
            step.run(name, index)
    for name, record in list(state.tasks.items()):
        if record.get("kind") == "items" and record["status"] == "running":
            step.refill(name)


def rerun(step: Step, names: list[str] | None) -> None:
    state = step.state
    if state.status not in ("failed", "cancelled"):
        return
    failed = [
        name
        for name, record in state.tasks.items()
        if step.spec.parent_of.get(name) is None and record["status"] in _RERUNNABLE
    ]
    if names is None:
        chosen = failed
    else:
        # A task inside a parallel block re-runs through its top-level ancestor.
        wanted = {top_level(step, name) for name in names if name in step.spec.by_name}
        chosen = [name for name in failed if name in wanted]
    if not chosen:
        return
    state.status = set_workflow_status(state.status, WorkflowStatus.RUNNING)
    state.result = None
    state.errors = [error for error in state.errors if error["task"] not in chosen]
    # Transitions held from a run that is about to be replaced belong to that old run.
    held = [entry for entry in state.held if top_level(step, str(entry[1])) not in chosen]
    state.held = []
    for name in chosen:
        rerun_task(step, name)
    if state.errors:
        state.held.extend(held)
    else:
        for target, source in held:
            step.arrive(target, source)


def top_level(step: Step, name: str) -> str:
    """The outermost task enclosing ``name`` (``name`` itself outside parallel blocks)."""
    while (parent := step.spec.parent_of.get(name)) is not None:
        name = parent
    return name


def rerun_task(step: Step, name: str) -> None:
    """Run a failed task again; a with_items task re-runs only its unsuccessful items."""
    record = step.state.tasks[name]
    if record.get("kind") != "items" or "items" not in record:
        set_status(record, TaskStatus.FAILED)  # not active, so schedule() replaces the record
        step.schedule(name, record.get("trigger"))
        return
    if "results" not in record:
        done = record["result"]
        record["results"] = (
            list(done) if isinstance(done, list) else [entry.get("output") for entry in done["results"]]
        )
    statuses, results = record["statuses"], record["results"]
    redo = [index for index in range(record["next"]) if statuses[index] != "completed"]
    for index in redo:
        statuses[index] = None
        results[index] = None
        record["item_attempts"].pop(str(index), None)
        step.state.journal.append(("item", name, index))
    set_status(record, TaskStatus.RUNNING)
    record["done"], record["failed"] = record["next"] - len(redo), 0
    record["inflight"], record["waiting"] = 0, []
    record["redo"] = redo
    record.pop("result", None)
    record.pop("error", None)
    step.state.runs += 1
    step.refill(name)


# -- the end -----------------------------------------------------------------------------------
