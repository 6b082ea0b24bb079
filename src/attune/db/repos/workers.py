"""Worker rows (docs/development.md): liveness, load and the executor's worker selection.

A worker is *live* when its status is ``active`` and its last heartbeat is at most
``1.5 × heartbeat_interval`` old (pipeline contract). Load is the number of executions it holds in
``scheduled``, ``running`` or ``canceling``.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from attune.db.models import Execution, Worker
from attune.db.repos.locking import for_update
from attune.domain.enums import ExecutionStatus, WorkerRole, WorkerStatus
from attune.domain.runtimes import canonical_runtime_name
from attune.errors import ConfigError

#: Executions that occupy a worker.
BUSY_STATUSES: tuple[str, ...] = (
    ExecutionStatus.SCHEDULED.value,
    ExecutionStatus.RUNNING.value,
    ExecutionStatus.CANCELING.value,
)
#: How many heartbeat intervals may pass before a worker counts as gone.
STALE_FACTOR = 1.5
#: Used when a worker does not publish ``max_concurrent_executions``.
DEFAULT_CAPACITY = 10


def stale_cutoff(now: datetime, heartbeat_interval: float) -> datetime:
    """Heartbeats older than this are stale."""
    return now - timedelta(seconds=STALE_FACTOR * heartbeat_interval)


def worker_runtimes(worker: Worker) -> set[str]:
    """The canonical runtime names in ``capabilities.runtimes`` (empty when absent or malformed)."""
    caps = worker.capabilities if isinstance(worker.capabilities, dict) else {}
    names = caps.get("runtimes")
    if not isinstance(names, list):
        return set()
    return {canonical_runtime_name(name) for name in names if isinstance(name, str)}


def worker_capacity(worker: Worker) -> int:
    """``capabilities.max_concurrent_executions`` (at least 1)."""
    caps = worker.capabilities if isinstance(worker.capabilities, dict) else {}
    value: Any = caps.get("max_concurrent_executions")
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return DEFAULT_CAPACITY


@dataclass(frozen=True)
class Registration:
    """What a service process says about itself when it (re)registers its ``worker`` row."""

    name: str
    role: WorkerRole
    worker_type: str
    host: str
    capabilities: Mapping[str, Any]
    port: int | None = None
    runtime_id: int | None = None
    #: This process's token, stored in ``meta.boot`` (None: leave ``meta`` alone).
    boot: str | None = None


async def upsert(
    session: AsyncSession, registration: Registration, *, now: datetime
) -> tuple[int, str | None]:
    """Create or refresh the row named ``registration.name`` (status active, heartbeat ``now``).

    Returns its id and the previous process's boot token (None for a new row). A row of that name
    serving another role is a configuration error: two services must not share one row.
    """
    query = for_update(session, sa.select(Worker).where(Worker.name == registration.name))
    row = (await session.execute(query)).scalar_one_or_none()
    if row is None:
        row = Worker(
            name=registration.name,
            worker_type=registration.worker_type,
            worker_role=registration.role.value,
            runtime=registration.runtime_id,
        )
        session.add(row)
    elif row.worker_role != registration.role.value:
        raise ConfigError(
            f"worker name '{registration.name}' belongs to a {row.worker_role} worker; "
            "give each service a unique worker name"
        )
    meta = dict(row.meta) if isinstance(row.meta, dict) else {}
    previous = meta.get("boot") if isinstance(meta.get("boot"), str) else None
    if registration.boot is not None:
        row.meta = {**meta, "boot": registration.boot}
    row.host = registration.host
    row.port = registration.port
    row.status = WorkerStatus.ACTIVE.value
    row.capabilities = dict(registration.capabilities)
    row.last_heartbeat = now
    await session.flush()
    return row.id, previous


async def set_state(
    session: AsyncSession,
    worker_id: int,
    *,
    now: datetime,
    status: WorkerStatus | None = None,
    heartbeat: bool = True,
) -> None:
    """Stamp ``last_heartbeat`` (when ``heartbeat``) and set ``status`` (when given)."""
    values: dict[str, Any] = {"updated": now}
    if heartbeat:
        values["last_heartbeat"] = now
    if status is not None:
        values["status"] = status.value
    await session.execute(sa.update(Worker).where(Worker.id == worker_id).values(**values))


async def set_capabilities(session: AsyncSession, worker_id: int, capabilities: Mapping[str, Any]) -> None:
    """Replace the worker's capabilities document (a missing row is left missing)."""
    row = await session.get(Worker, worker_id)
    if row is not None:
        row.capabilities = dict(capabilities)


def by_name_query() -> sa.Select[Worker]:
    """Every worker, by name (the API's listing)."""
    return sa.select(Worker).order_by(Worker.name)


async def by_id(session: AsyncSession, worker_id: int) -> Worker | None:
    return await session.get(Worker, worker_id)


def _fresh(now: datetime, heartbeat_interval: float, alive: Collection[int]) -> sa.ColumnElement[bool]:
    """A worker with a fresh heartbeat, or one of ``alive`` (workers of the calling process)."""
    fresh = sa.and_(
        Worker.last_heartbeat.is_not(None), Worker.last_heartbeat >= stale_cutoff(now, heartbeat_interval)
    )
    return sa.or_(fresh, Worker.id.in_(sorted(alive))) if alive else fresh


@functools.cache
def _live_action_workers_query() -> sa.Select[Worker]:
    """``live_action_workers``' statement, built once: building it and its cache key anew cost
    ≈ 0.25 ms of CPU per scheduling decision (docs/performance.md "Next steps")."""
    fresh = sa.and_(Worker.last_heartbeat.is_not(None), Worker.last_heartbeat >= sa.bindparam("cutoff"))
    return (
        sa.select(Worker)
        .where(
            Worker.worker_role == WorkerRole.ACTION.value,
            Worker.status == WorkerStatus.ACTIVE.value,
            sa.or_(fresh, Worker.id.in_(sa.bindparam("alive", expanding=True))),
        )
        .order_by(Worker.name)
    )


async def live_action_workers(
    session: AsyncSession, *, now: datetime, heartbeat_interval: float, alive: Collection[int] = ()
) -> Sequence[Worker]:
    """Action workers that are active with a fresh heartbeat (or in ``alive``), by name."""
    parameters = {"cutoff": stale_cutoff(now, heartbeat_interval), "alive": sorted(alive)}
    return (await session.execute(_live_action_workers_query(), parameters)).scalars().all()


async def load_counts(session: AsyncSession, worker_ids: Collection[int]) -> dict[int, int]:
    """Executions in scheduled/running/canceling per worker id (missing ids have none)."""
    if not worker_ids:
        return {}
    query = (
        sa.select(Execution.worker, sa.func.count())
        .where(Execution.worker.in_(list(worker_ids)), Execution.status.in_(BUSY_STATUSES))
        .group_by(Execution.worker)
    )
    rows = (await session.execute(query)).all()
    return {int(worker): int(count) for worker, count in rows if worker is not None}


async def select_worker(
    session: AsyncSession,
    runtime_name: str | None,
    *,
    now: datetime,
    heartbeat_interval: float,
    alive: Collection[int] = (),
) -> Worker | None:
    """The least loaded live action worker that can run ``runtime_name`` (``None``: any runtime).

    Load is busy executions relative to ``max_concurrent_executions``; ties go to the name.
    ``alive``: workers known to be alive whatever their heartbeat (those of this process).
    """
    workers = await live_action_workers(session, now=now, heartbeat_interval=heartbeat_interval, alive=alive)
    if runtime_name is not None:
        wanted = canonical_runtime_name(runtime_name)
        workers = [worker for worker in workers if wanted in worker_runtimes(worker)]
    if not workers:
        return None
    if len(workers) == 1:
        return workers[0]  # the only candidate, whatever its load (no count query)
    loads = await load_counts(session, [worker.id for worker in workers])
    return min(workers, key=lambda w: (loads.get(w.id, 0) / worker_capacity(w), w.name))


async def mark_stale_inactive(
    session: AsyncSession, *, now: datetime, heartbeat_interval: float, alive: Collection[int] = ()
) -> list[int]:
    """Set active action workers whose heartbeat is missing or stale to ``inactive``; their ids.

    Workers in ``alive`` (those of the calling process) are left alone.
    """
    stale = sa.not_(_fresh(now, heartbeat_interval, alive))
    ids = list(
        (
            await session.execute(
                sa.select(Worker.id).where(
                    Worker.worker_role == WorkerRole.ACTION.value,
                    Worker.status == WorkerStatus.ACTIVE.value,
                    stale,
                )
            )
        ).scalars()
    )
    if ids:
        await session.execute(
            sa.update(Worker)
            .where(Worker.id.in_(ids), Worker.status == WorkerStatus.ACTIVE.value, stale)
            .values(status=WorkerStatus.INACTIVE.value, updated=now)
            .execution_options(synchronize_session=False)
        )
    return ids


async def orphaned_executions(
    session: AsyncSession,
    *,
    now: datetime,
    heartbeat_interval: float,
    limit: int = 500,
    alive: Collection[int] = (),
) -> Sequence[tuple[Execution, Worker | None]]:
    """Busy executions whose worker stopped heartbeating (or no longer exists), oldest first.

    Keyed on the heartbeat, not the status: a worker shutting down gracefully marks itself
    inactive but keeps heartbeating while it finishes its executions. Executions of workers in
    ``alive`` are never orphans.
    """
    cutoff = stale_cutoff(now, heartbeat_interval)
    query = (
        sa.select(Execution, Worker)
        .outerjoin(Worker, Worker.id == Execution.worker)
        .where(
            Execution.status.in_(BUSY_STATUSES),
            Execution.worker.is_not(None),
            sa.or_(Worker.id.is_(None), Worker.last_heartbeat.is_(None), Worker.last_heartbeat < cutoff),
            *([Execution.worker.not_in(sorted(alive))] if alive else []),
        )
        .order_by(Execution.id)
        .limit(limit)
    )
    return [(row[0], row[1]) for row in (await session.execute(query)).all()]
