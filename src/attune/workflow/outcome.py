"""How a workflow ends: its status, ``output`` and ``errors`` (docs/workflows.md "Outcome and result").

Functions of one conductor step (``attune.workflow.conductor``); pure like it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from attune.domain import keyrefs
from attune.domain.templates import TemplateError
from attune.workflow import expressions
from attune.workflow.events import Finish
from attune.workflow.records import FAILED_OUTCOMES, WorkflowStatus, set_workflow_status

if TYPE_CHECKING:
    from attune.workflow.conductor import Step

__all__ = ["finish", "kept"]


def finish(step: Step, status: str) -> None:
    state = step.state
    if step.spec.orquesta and status != "cancelled":
        for target, arrived in state.pending_joins.items():
            if arrived:  # Orquesta's UnreachableJoinError
                step.engine_error(target, f"the join task '{target}' is partially satisfied but unreachable")
        status = "failed" if state.errors else status
    output = render_output(step, status)
    if step.spec.orquesta and status == "completed" and state.errors:
        status = "failed"  # an output that cannot be rendered fails an Orquesta workflow
    result: dict[str, Any] = {"succeeded": status == "completed", "output": output}
    error: str | None = None
    if status == "failed":
        result["errors"] = error_entries(step)
        names = list(dict.fromkeys(str(entry["task"]) for entry in state.errors))
        error = f"Workflow failed: {len(names)} task(s) failed: {', '.join(names)}"
        result["error"] = error
        result["failed_tasks"] = names
    elif status == "cancelled":
        error = "Workflow cancelled"
        result["error"] = error
    state.status = set_workflow_status(state.status, WorkflowStatus(status))
    state.result = result
    step.commands.append(Finish(status, result, error))


def terminal_context(step: Step) -> dict[str, Any]:
    """Orquesta: the contexts of the tasks that ended a branch, merged in the order they ended."""
    ends = [record for record in step.state.tasks.values() if isinstance(record.get("ctx_end"), int)]
    merged: dict[str, Any] = {}
    for record in sorted(ends, key=lambda r: int(r["ctx_end"])):
        if isinstance(record.get("ctx_out"), Mapping):
            merged.update(record["ctx_out"])
    return merged


def render_output(step: Step, status: str) -> dict[str, Any]:
    """``output_map`` rendered (also on failure); Orquesta entries see the earlier ones."""
    output: dict[str, Any] = {}
    if status == "cancelled" or not step.spec.output_map:
        return output
    variables = dict(step.state.vars)
    if step.spec.orquesta:
        variables = terminal_context(step) or variables
    context = step.context(None, variables=variables)
    for key, template in step.spec.output_map.items():
        try:
            output[key] = kept(expressions.render(step.engine, template, context))
        except TemplateError as exc:
            if step.spec.orquesta and status == "completed":
                step.engine_error(key, f"output.{key}: {exc.message}")
            else:
                step.warn(f"output_map.{key} failed: {exc.message}")
            continue
        if step.spec.orquesta:
            variables[key] = output[key]
            context = expressions.build_context(
                parameters=step.state.parameters,
                variables=variables,
                tasks=step.state.tasks,
                outcome=None,
                started_at=step.state.started_at,
                orquesta=True,
                keys=step.keys,
            )
    return output


def error_entries(step: Step) -> list[dict[str, Any]]:
    """Orquesta's ``errors``: each failed task with its result, then the workflow's own errors."""
    entries: list[dict[str, Any]] = [
        {
            "type": "error",
            "message": "Execution failed. See result for details.",
            "task_id": name,
            "result": record.get("result"),
        }
        for name, record in step.state.tasks.items()
        if record.get("status") in FAILED_OUTCOMES
    ]
    entries.extend(
        {"type": "error", "message": str(entry["error"]), "task_id": str(entry["task"])}
        for entry in step.state.errors
        if entry.get("engine")
    )
    return entries


def kept(value: Any) -> Any:
    """A value stored in the workflow's state: decrypted key material is never kept in it."""
    if keyrefs.contains_revealed(value):
        return "********"
    return value
