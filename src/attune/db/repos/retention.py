"""The retention job's deletes (docs/operations.md): which rows are past the cut-off, in batches.

The deletes run on the session's connection, beneath the ORM change capture, so purging records
no history of its own (see :mod:`attune.retention`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from attune.db.models import Base
from attune.domain.enums import TERMINAL_EXECUTION_STATUSES


@dataclass(frozen=True)
class PurgeStep:
    """One table and the condition its purged rows meet."""

    table: sa.Table
    condition: sa.ColumnElement[bool]

    @property
    def name(self) -> str:
        return self.table.name


def purge_plan(*, cutoff: datetime, worker_cutoff: datetime) -> list[PurgeStep]:
    """The steps of a purge, in order (executions before the inquiries and runs they orphan)."""
    tables = Base.metadata.tables
    execution, inquiry, run = tables["execution"], tables["inquiry"], tables["workflow_execution"]
    event, enforcement = tables["event"], tables["enforcement"]
    execution_history, worker_history = tables["execution_history"], tables["worker_history"]
    terminal = sorted(status.value for status in TERMINAL_EXECUTION_STATUSES)
    return [
        PurgeStep(execution, sa.and_(execution.c.created < cutoff, execution.c.status.in_(terminal))),
        PurgeStep(
            inquiry,
            sa.and_(
                inquiry.c.created < cutoff,
                ~sa.exists(sa.select(execution.c.id).where(execution.c.id == inquiry.c.execution)),
            ),
        ),
        PurgeStep(
            run,
            sa.and_(
                run.c.created < cutoff,
                ~sa.exists(sa.select(execution.c.id).where(execution.c.id == run.c.execution)),
            ),
        ),
        PurgeStep(enforcement, enforcement.c.created < cutoff),
        PurgeStep(event, event.c.created < cutoff),
        PurgeStep(execution_history, execution_history.c.time < cutoff),
        PurgeStep(worker_history, worker_history.c.time < worker_cutoff),
    ]


async def delete_batch(session: AsyncSession, step: PurgeStep, batch_size: int) -> int:
    """Delete up to ``batch_size`` rows of the step (lowest ids first); how many went."""
    table = step.table
    ids = sa.select(table.c.id).where(step.condition).order_by(table.c.id).limit(batch_size)
    connection = await session.connection()
    result = await connection.execute(sa.delete(table).where(table.c.id.in_(ids.scalar_subquery())))
    return max(result.rowcount, 0)
