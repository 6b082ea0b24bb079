"""``with_items`` for the conductor: the item window, concurrency, and the task's aggregate result.

Functions of one conductor step (``attune.workflow.conductor``); pure like it. docs/workflows.md
"Fan-out, joins and parallel groups".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from attune.domain.templates import TemplateError
from attune.workflow import expressions
from attune.workflow.records import FAILED_OUTCOMES, TaskRecord
from attune.workflow.spec import TaskSpec

if TYPE_CHECKING:
    from attune.workflow.conductor import Step

__all__ = ["begin", "finish_items", "item_done", "named_item", "refill"]


def begin(step: Step, name: str, task: TaskSpec, record: TaskRecord) -> None:
    try:
        raw = expressions.render(step.engine, task.with_items, step.context(record["trigger"]))
    except TemplateError as exc:
        step.complete(name, "failed", {"succeeded": False, "error": f"with_items: {exc.message}"})
        return
    items = raw if isinstance(raw, list) else [raw]
    if task.batch_size:
        size = task.batch_size
        items = [items[start : start + size] for start in range(0, len(items), size)]
    count = len(items)
    window: TaskRecord = {
        "kind": "items",
        "items": items,
        "next": 0,
        "inflight": 0,
        "done": 0,
        "failed": 0,
        "statuses": [None] * count,
        "results": [None] * count,
        "waiting": [],
        "redo": [],
        "item_attempts": {},
    }
    record.update(window)
    step.state.journal.append(("items", name, None))
    if not items:
        finish_items(step, name)
        return
    refill(step, name)


def refill(step: Step, name: str) -> None:
    """Start waiting items (lowest index first) until ``concurrency`` are in flight or the step's
    room is spent (the rest are not taken: a later ``Continue`` starts them)."""
    record = step.state.tasks[name]
    if step.state.status != "running" or record["status"] != "running":
        return
    task = step.spec.by_name[name]
    count = len(record["items"])
    limit = task.concurrency or count
    redo: list[int] = record["redo"]
    while record["inflight"] < limit and step.room != 0:
        if redo:
            index = redo.pop(0)
        elif record["next"] < count:
            index = record["next"]
            record["next"] += 1
        else:
            break
        record["inflight"] += 1
        step.run(name, index)
    if record["done"] == count and record["status"] == "running":
        finish_items(step, name)


def item_done(step: Step, name: str, index: int, status: str, result: Any) -> None:
    record = step.state.tasks[name]
    record["statuses"][index] = status
    record["results"][index] = result
    step.state.journal.append(("item", name, index))
    record["inflight"] -= 1
    record["done"] += 1
    if status in FAILED_OUTCOMES:
        record["failed"] += 1


def finish_items(step: Step, name: str) -> None:
    record = step.state.tasks[name]
    statuses, results = record["statuses"], record.pop("results")
    aggregate: Any = {
        "results": [
            {"index": index, "status": statuses[index], "output": results[index]}
            for index in range(len(statuses))
        ],
        "total": len(statuses),
    }
    if step.spec.orquesta:
        aggregate = list(results)  # Orquesta: result() of a with-items task is the item results
    # A cancelled item does not fail the task.
    step.complete(name, "failed" if record["failed"] else "completed", aggregate)


def named_item(item: Any, names: list[str] | None) -> Any:
    """Orquesta's ``x, y in <% zip(…) %>``: a list item becomes ``{x: …, y: …}``."""
    if not names:
        return item
    if isinstance(item, list | tuple):
        return dict(zip(names, item, strict=False))
    return {names[0]: item} if len(names) == 1 else item
