"""A with_items task's item lists, kept in the ``workflow_item`` table rather than in the run state.

The persisted run state holds each with_items record without its item lists (they may be
thousands long); :func:`write_items` writes only the items a step changed (the conductor's journal).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from sqlalchemy.ext.asyncio import AsyncSession

from attune.db.repos import workflows as repo
from attune.workflow import conductor

#: In a persisted with_items record, where its item lists went (the ``workflow_item`` table).
EXTERNAL_KEY = "__items__"
_ITEM_LISTS = ("items", "statuses", "results")


async def attach_items(session: AsyncSession, state_id: int, state: conductor.WorkflowState) -> None:
    """Put back the item lists that :func:`stored_record` moved to ``workflow_item``."""
    # The persisted form carries a key the live record does not have.
    raw = cast(dict[str, dict[str, Any]], state.tasks)
    external = {
        name: record.pop(EXTERNAL_KEY)
        for name, record in raw.items()
        if isinstance(record.get(EXTERNAL_KEY), dict)
    }
    if not external:
        return
    for name, info in external.items():
        count = int(info.get("count", 0))
        record = state.tasks[name]
        record["items"], record["statuses"] = [None] * count, [None] * count
        if info.get("results"):
            record["results"] = [None] * count
    for name, index, item, status, result in await repo.items_of(session, state_id, sorted(external)):
        record = state.tasks[name]
        if not 0 <= index < len(record["items"]):
            continue
        record["items"][index] = item
        record["statuses"][index] = status
        if "results" in record:
            record["results"][index] = result


def stored_record(record: Mapping[str, Any]) -> Mapping[str, Any]:
    """A task record as stored in ``variables``: a with_items record without its item lists."""
    if record.get("kind") != "items" or "items" not in record:
        return record
    stored = {key: value for key, value in record.items() if key not in _ITEM_LISTS}
    stored[EXTERNAL_KEY] = {"count": len(record["items"]), "results": "results" in record}
    return stored


def item_result(record: Mapping[str, Any], index: int) -> Any:
    """Item ``index``'s result: from the live list, or from the aggregate once the task finished."""
    results = record.get("results")
    if results is not None:
        return results[index]
    aggregate = record.get("result")
    entries = aggregate.get("results") if isinstance(aggregate, dict) else None
    if isinstance(entries, list) and 0 <= index < len(entries) and isinstance(entries[index], dict):
        return entries[index].get("output")
    return None


async def write_items(session: AsyncSession, state_id: int, state: conductor.WorkflowState) -> None:
    """Write the with_items changes the conductor journaled in this step to ``workflow_item``."""
    journal, state.journal = state.journal, []
    if not journal:
        return
    replaced = {name for kind, name, _ in journal if kind == "items"}
    for name in sorted(replaced):
        record = state.tasks.get(name) or {}
        rows: list[repo.ItemRow] = []
        if record.get("kind") == "items" and "items" in record:
            rows = [
                repo.ItemRow(name, index, item, record["statuses"][index], item_result(record, index))
                for index, item in enumerate(record["items"])
            ]
        await repo.replace_items(session, state_id, name, rows)
    changed = {
        (name, index)
        for kind, name, index in journal
        if kind == "item" and name not in replaced and index is not None
    }
    updates: list[repo.ItemRow] = []
    for name, index in sorted(changed):
        record = state.tasks.get(name) or {}
        if record.get("kind") != "items" or not 0 <= index < len(record.get("statuses", [])):
            continue
        updates.append(repo.ItemRow(name, index, None, record["statuses"][index], item_result(record, index)))
    await repo.update_items(session, state_id, updates)
