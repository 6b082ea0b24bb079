"""Task retries for the conductor: whether an attempt is retried, and when.

docs/workflows.md "Retries, timeouts, delays, gates".

Functions of one conductor step (``attune.workflow.conductor``); pure like it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from attune.domain.templates import TemplateError
from attune.workflow import expressions
from attune.workflow.events import StartTimer
from attune.workflow.records import FAILED_OUTCOMES

if TYPE_CHECKING:
    from attune.workflow.conductor import Step

__all__ = ["retry_later", "should_retry"]


def should_retry(step: Step, name: str, attempts: int, status: str, result: Any) -> bool:
    """Whether attempt ``attempts`` of task ``name`` (or of one of its items) is tried again."""
    retry = step.spec.by_name[name].retry
    if retry is None or attempts - 1 >= retry.count or status == "cancelled":
        return False
    if retry.when is not None:
        # Orquesta: ``when`` decides after any attempt (a success too, e.g. to poll).
        context = step.context(None, expressions.Outcome(status, result), task=name)
        try:
            return expressions.evaluate_condition(step.engine, retry.when, context)
        except TemplateError as exc:
            step.warn(f"{name}: retry.when failed, not retrying: {exc.message}")
            return False
    if status not in FAILED_OUTCOMES:
        return False
    if retry.on_error is None:
        return True
    context = step.context(None, expressions.Outcome(status, result), task=name)
    try:
        return expressions.evaluate_condition(step.engine, retry.on_error, context)
    except TemplateError as exc:
        step.warn(f"{name}: retry.on_error failed, not retrying: {exc.message}")
        return False


def retry_later(step: Step, name: str, index: int | None, attempts: int) -> None:
    """Run the task (or item) again after its retry delay: a timer, or at once."""
    task = step.spec.by_name[name]
    assert task.retry is not None
    seconds = float(task.delay or 0) + task.retry.wait(attempts - 1)
    if seconds > 0:
        step.commands.append(StartTimer(name, index, "retry", seconds))
    else:
        step.timer_fired(name, index, "retry")
