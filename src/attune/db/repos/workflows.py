"""Workflow definitions, their companion actions and workflow executions (docs/development.md).

Every definition has a companion action with the same ref (``action.workflow_def`` links them);
that action is what users and rules run. These helpers keep the pair consistent; they never commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from attune.db.models import Action, Execution, Pack, WorkflowDefinition, WorkflowExecution, WorkflowItem
from attune.db.repos.locking import for_update
from attune.domain.enums import ExecutionStatus
from attune.errors import Conflict, Unprocessable

#: ``entrypoint`` of a companion action created through ``POST /workflows`` (no file behind it).
API_ENTRYPOINT = "workflow"


def file_entrypoint(name: str) -> str:
    """The companion action's entrypoint for a workflow stored in ``workflows/<name>.yaml``."""
    return f"workflows/{name}.yaml"


@dataclass(frozen=True)
class DefinitionValues:
    """What a workflow definition row holds besides its ref and pack."""

    label: str
    description: str | None
    version: str
    param_schema: Any
    out_schema: Any
    definition: dict[str, Any]
    tags: list[str]
    enabled: bool = True

    def columns(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "description": self.description,
            "version": self.version,
            "param_schema": self.param_schema,
            "out_schema": self.out_schema,
            "definition": self.definition,
            "tags": list(self.tags),
            "enabled": self.enabled,
        }


async def by_ref(session: AsyncSession, ref: str) -> WorkflowDefinition | None:
    """The definition with this ref, or None."""
    query = sa.select(WorkflowDefinition).where(WorkflowDefinition.ref == ref)
    return (await session.execute(query)).scalar_one_or_none()


def list_query(
    *,
    pack_ref: str | None = None,
    tags: Sequence[str] | None = None,
    enabled: bool | None = None,
    search: str | None = None,
) -> sa.Select[Any]:
    """Definitions ordered by ref, filtered as ``GET /workflows`` describes (docs/api.md)."""
    query = sa.select(WorkflowDefinition).order_by(WorkflowDefinition.ref, WorkflowDefinition.id)
    if pack_ref is not None:
        query = query.where(WorkflowDefinition.pack_ref == pack_ref)
    if search:
        pattern = f"%{search.lower()}%"
        query = query.where(
            sa.or_(
                sa.func.lower(WorkflowDefinition.label).like(pattern),
                sa.func.lower(sa.func.coalesce(WorkflowDefinition.description, "")).like(pattern),
            )
        )
    if enabled is True or (enabled is False and tags):
        query = query.where(WorkflowDefinition.enabled.is_(enabled))
    return query


def has_any_tag(row: WorkflowDefinition, tags: Sequence[str]) -> bool:
    """The tag filter (OR); applied in Python because tag lists are stored portably."""
    return bool(set(row.tags or []) & set(tags))


async def companion_of(session: AsyncSession, definition: WorkflowDefinition) -> Action | None:
    """The action linked to ``definition`` (by ``workflow_def``, else by ref)."""
    action = await session.scalar(sa.select(Action).where(Action.workflow_def == definition.id))
    if action is None:
        action = await session.scalar(sa.select(Action).where(Action.ref == definition.ref))
    return action


async def save_definition(
    session: AsyncSession,
    pack: Pack,
    ref: str,
    values: DefinitionValues,
    *,
    entrypoint: str,
    replace_existing: bool = True,
) -> tuple[WorkflowDefinition, bool]:
    """Insert or update the definition ``ref`` and its companion action; return (row, created).

    Raises Conflict when the ref exists and ``replace_existing`` is False, when the definition
    belongs to another pack, or when a plain (non-workflow) action already holds the ref.
    """
    row = await by_ref(session, ref)
    created = row is None
    if row is None:
        row = WorkflowDefinition(ref=ref, pack=pack.id, pack_ref=pack.ref, **values.columns())
        session.add(row)
    else:
        if not replace_existing:
            raise Conflict(f"Workflow with ref '{ref}' already exists")
        if row.pack != pack.id:
            raise Conflict(f"Workflow '{ref}' belongs to pack '{row.pack_ref}'")
        for key, value in values.columns().items():
            if getattr(row, key) != value:
                setattr(row, key, value)
    await session.flush()
    await save_companion(session, row, pack, entrypoint=entrypoint)
    return row, created


async def save_companion(
    session: AsyncSession, definition: WorkflowDefinition, pack: Pack, *, entrypoint: str | None = None
) -> Action:
    """Create or update the companion action of ``definition`` from its current columns."""
    action = await companion_of(session, definition)
    if action is not None and action.workflow_def not in (None, definition.id):
        raise Conflict(f"Action with ref '{definition.ref}' already exists")
    if action is not None and action.workflow_def is None:
        raise Conflict(f"Action with ref '{definition.ref}' already exists and is not a workflow")
    values: dict[str, Any] = {
        "label": definition.label,
        "description": definition.description or "",
        "param_schema": definition.param_schema,
        "out_schema": definition.out_schema,
        "workflow_def": definition.id,
        "runtime": None,
        "is_adhoc": False,
    }
    if action is None:
        if "." not in definition.ref:
            raise Unprocessable("Validation constraint failed: action_ref_format")
        action = Action(
            ref=definition.ref,
            pack=pack.id,
            pack_ref=pack.ref,
            entrypoint=entrypoint or API_ENTRYPOINT,
            **values,
        )
        session.add(action)
    else:
        if entrypoint is not None:
            values["entrypoint"] = entrypoint
        values.update(pack=pack.id, pack_ref=pack.ref)
        for key, value in values.items():
            if getattr(action, key) != value:
                setattr(action, key, value)
    await session.flush()
    return action


async def delete_definition(session: AsyncSession, definition: WorkflowDefinition) -> None:
    """Delete a definition and its companion action (workflow executions cascade)."""
    await session.execute(sa.delete(Action).where(Action.workflow_def == definition.id))
    await session.execute(sa.delete(WorkflowDefinition).where(WorkflowDefinition.id == definition.id))


async def remove_missing(session: AsyncSession, pack_id: int, keep: set[str]) -> list[str]:
    """Delete the pack's file-backed definitions whose refs are not in ``keep``; return their refs.

    Definitions created through ``POST /workflows`` (companion entrypoint ``workflow``) have no
    file and are left alone.
    """
    query = (
        sa.select(WorkflowDefinition, Action.entrypoint)
        .outerjoin(Action, Action.workflow_def == WorkflowDefinition.id)
        .where(WorkflowDefinition.pack == pack_id)
    )
    removed: list[str] = []
    for definition, entrypoint in (await session.execute(query)).all():
        if definition.ref in keep or entrypoint == API_ENTRYPOINT:
            continue
        await delete_definition(session, definition)
        removed.append(definition.ref)
    await session.flush()
    return removed


# -- workflow executions ---------------------------------------------------------------------


async def execution_state(
    session: AsyncSession, execution_id: int, *, lock: bool = False
) -> WorkflowExecution | None:
    """The orchestration row of the workflow execution ``execution_id``.

    ``lock`` takes a row lock on PostgreSQL (SQLite write transactions are already serialised by
    ``BEGIN IMMEDIATE``), so two advance steps of one workflow never interleave.
    """
    query = sa.select(WorkflowExecution).where(WorkflowExecution.execution == execution_id)
    if lock:
        # A step never needs the (large, write-once) task graph.
        query = query.options(defer(WorkflowExecution.task_graph))
    if lock:
        query = for_update(session, query)
    return (await session.execute(query.order_by(WorkflowExecution.id.desc()).limit(1))).scalar_one_or_none()


async def create_state(
    session: AsyncSession, execution_id: int, definition_id: int, task_graph: dict[str, Any]
) -> WorkflowExecution:
    """The orchestration row of a workflow execution that starts now (``running``, no state yet)."""
    row = WorkflowExecution(
        execution=execution_id,
        workflow_def=definition_id,
        task_graph=task_graph,
        variables={},
        status=ExecutionStatus.RUNNING.value,
        current_tasks=[],
        completed_tasks=[],
        failed_tasks=[],
        skipped_tasks=[],
    )
    session.add(row)
    await session.flush()
    return row


async def lock_state(session: AsyncSession, state_id: int) -> WorkflowExecution | None:
    """The orchestration row ``state_id`` (without its task graph), locked for the transaction."""
    query = (
        sa.select(WorkflowExecution)
        .where(WorkflowExecution.id == state_id)
        .options(defer(WorkflowExecution.task_graph))
    )
    return (await session.execute(for_update(session, query))).scalar_one_or_none()


async def children(session: AsyncSession, state_id: int) -> Sequence[Execution]:
    """Every child execution of one workflow run, oldest first."""
    query = sa.select(Execution).where(Execution.workflow_execution_id == state_id).order_by(Execution.id)
    return (await session.execute(query)).scalars().all()


async def live_children(session: AsyncSession, state_id: int, statuses: Sequence[str]) -> Sequence[Execution]:
    """Children of one workflow run whose status is in ``statuses``."""
    query = (
        sa.select(Execution)
        .where(Execution.workflow_execution_id == state_id, Execution.status.in_(list(statuses)))
        .order_by(Execution.id)
    )
    return (await session.execute(query)).scalars().all()


async def running_states(session: AsyncSession) -> Sequence[tuple[int, Any]]:
    """(id, updated) of every workflow run that is still going (for the timer loop)."""
    query = sa.select(WorkflowExecution.id, WorkflowExecution.updated).where(
        WorkflowExecution.status.in_(["running", "canceling"])
    )
    return [(row[0], row[1]) for row in (await session.execute(query)).all()]


# -- the workflow engine's statements ---------------------------------------------------------------


class ItemRow(NamedTuple):
    """One item of a with_items task in ``workflow_item`` (``item`` unused by updates)."""

    task_name: str
    item_index: int
    item: Any
    status: str | None
    result: Any


def _items_table() -> sa.Table:
    return cast(sa.Table, WorkflowItem.__table__)


async def items_of(session: AsyncSession, state_id: int, tasks: Sequence[str]) -> list[ItemRow]:
    """The stored items of tasks ``tasks`` of run ``state_id``."""
    table = _items_table()
    rows = await session.execute(
        sa.select(table.c.task_name, table.c.item_index, table.c.item, table.c.status, table.c.result).where(
            table.c.workflow_execution == state_id, table.c.task_name.in_(list(tasks))
        )
    )
    return [ItemRow(*row) for row in rows.all()]


async def replace_items(session: AsyncSession, state_id: int, task: str, rows: Sequence[ItemRow]) -> None:
    """Replace every stored item of task ``task`` of run ``state_id`` by ``rows``."""
    table = _items_table()
    await session.execute(
        sa.delete(table).where(table.c.workflow_execution == state_id, table.c.task_name == task)
    )
    if rows:
        values = [
            {
                "workflow_execution": state_id,
                "task_name": row.task_name,
                "item_index": row.item_index,
                "item": row.item,
                "status": row.status,
                "result": row.result,
            }
            for row in rows
        ]
        await session.execute(sa.insert(table), values)


async def update_items(session: AsyncSession, state_id: int, rows: Sequence[ItemRow]) -> None:
    """Set the status and result of stored items (one executemany)."""
    if not rows:
        return
    table = _items_table()
    await session.execute(
        sa.update(table)
        .where(
            table.c.workflow_execution == sa.bindparam("b_state"),
            table.c.task_name == sa.bindparam("b_task"),
            table.c.item_index == sa.bindparam("b_index"),
        )
        .values(status=sa.bindparam("b_status"), result=sa.bindparam("b_result", type_=table.c.result.type))
        .execution_options(synchronize_session=False),
        [
            {
                "b_state": state_id,
                "b_task": row.task_name,
                "b_index": row.item_index,
                "b_status": row.status,
                "b_result": row.result,
            }
            for row in rows
        ],
    )


async def step_parent(session: AsyncSession, execution_id: int) -> Execution | None:
    """A workflow's own execution for a step: without its parameters (perhaps thousands of items)
    and result, which a step does not need."""
    return await session.get(
        Execution, execution_id, options=[defer(Execution.config), defer(Execution.result)]
    )


async def definition_version(session: AsyncSession, definition_id: int) -> tuple[str, Any] | None:
    """(ref, updated) of a workflow definition, or None when it is gone."""
    found = (
        await session.execute(
            sa.select(WorkflowDefinition.ref, WorkflowDefinition.updated).where(
                WorkflowDefinition.id == definition_id
            )
        )
    ).one_or_none()
    return (found[0], found[1]) if found is not None else None


async def task_graph(session: AsyncSession, state_id: int) -> Any:
    """The normalised document run ``state_id`` started with."""
    return await session.scalar(
        sa.select(WorkflowExecution.task_graph).where(WorkflowExecution.id == state_id)
    )


async def stored_parameters(session: AsyncSession, execution_id: int) -> tuple[Any, Any]:
    """(config, secret_params) of an execution; (None, None) when it is gone."""
    found = (
        await session.execute(
            sa.select(Execution.config, Execution.secret_params).where(Execution.id == execution_id)
        )
    ).one_or_none()
    return (found[0], found[1]) if found is not None else (None, None)


async def move_execution(
    session: AsyncSession, execution_id: int, source: str, target: str, **values: Any
) -> bool:
    """Set ``status`` to ``target`` (and ``values``) if the execution is still ``source``;
    False when another actor moved it first."""
    moved = await session.execute(
        sa.update(Execution)
        .where(Execution.id == execution_id, Execution.status == source)
        .values(status=target, **values)
        .execution_options(synchronize_session=False)
    )
    return getattr(moved, "rowcount", 0) == 1


async def child_link(session: AsyncSession, execution_id: int) -> tuple[int | None, Any]:
    """(workflow_execution_id, workflow_task) of an execution; (None, None) when it is gone."""
    found = (
        await session.execute(
            sa.select(Execution.workflow_execution_id, Execution.workflow_task).where(
                Execution.id == execution_id
            )
        )
    ).one_or_none()
    return (found[0], found[1]) if found is not None else (None, None)


async def fresh_executions(session: AsyncSession, ids: Sequence[int]) -> Sequence[Execution]:
    """The executions ``ids`` re-read from the database (not the session's copies), by id."""
    query = (
        sa.select(Execution)
        .where(Execution.id.in_(list(ids)))
        .order_by(Execution.id)
        .execution_options(populate_existing=True)
    )
    return (await session.execute(query)).scalars().all()


async def action_by_ref(session: AsyncSession, ref: str) -> Action | None:
    """The action ``ref``, or None."""
    return await session.scalar(sa.select(Action).where(Action.ref == ref))


async def task_children(
    session: AsyncSession, state_id: int, tasks: Sequence[str], statuses: Sequence[str] | None = None
) -> Sequence[Execution]:
    """Children of run ``state_id`` that ran tasks ``tasks`` (with a status in ``statuses``), by id."""
    query = sa.select(Execution).where(
        Execution.workflow_execution_id == state_id, Execution.workflow_task_name.in_(list(tasks))
    )
    if statuses is not None:
        query = query.where(Execution.status.in_(list(statuses)))
    return (await session.execute(query.order_by(Execution.id))).scalars().all()


async def state_variables(session: AsyncSession, state_ids: Sequence[int]) -> list[tuple[int, Any, Any]]:
    """(id, updated, variables) of runs ``state_ids``."""
    rows = await session.execute(
        sa.select(WorkflowExecution.id, WorkflowExecution.updated, WorkflowExecution.variables).where(
            WorkflowExecution.id.in_(list(state_ids))
        )
    )
    return [(row[0], row[1], row[2]) for row in rows.all()]
