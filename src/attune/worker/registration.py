"""Worker registration, capabilities and heartbeat (docs/packs.md, docs/operations.md).

A worker is one ``worker`` row (role ``action``), upserted by name so a restarted worker keeps
its id and therefore its queues. The scheduler reads ``capabilities.runtimes`` (canonical runtime
names) and ``last_heartbeat`` to decide whether it may send work here. ``meta.boot`` is a token
per worker process: a restarted worker reads its predecessor's to find (and kill) the action
processes that predecessor left behind.

Runtimes registered after the worker started are learned at the next heartbeat (the runtime table
changed) or at once when a pack registration reaches the worker (:func:`runtime_rows_key`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from attune import __version__
from attune.clock import Clock
from attune.db.database import Database
from attune.db.models import Runtime as RuntimeRow
from attune.db.repos import runtimes as runtime_rows
from attune.db.repos import workers
from attune.db.types import utcnow
from attune.domain.enums import WorkerRole, WorkerStatus
from attune.domain.runtimes import canonical_runtime_name
from attune.services import registration
from attune.settings import Settings
from attune.worker import commands, interpreters, versions

log = logging.getLogger(__name__)

RUNTIMES_ENV = "ATTUNE_WORKER_RUNTIMES"
NATIVE = "native"


def runtime_filter(environ: Mapping[str, str]) -> list[str] | None:
    """Canonical names from ``ATTUNE_WORKER_RUNTIMES`` in ``environ`` (comma list); None when unset/empty."""
    raw = environ.get(RUNTIMES_ENV, "")
    names = [canonical_runtime_name(part) for part in raw.split(",") if part.strip()]
    return _unique(names) or None


def _unique(names: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(names))


async def runtime_available(distributions: Any) -> bool:
    """Whether a runtime row is usable here (docs/packs.md).

    ``always_available`` or ``check_required: false`` need no check; otherwise one of the
    verification commands must pass. No verification block at all means unavailable.
    """
    verification = distributions.get("verification") if isinstance(distributions, dict) else None
    if not isinstance(verification, dict):
        return False
    if verification.get("always_available") is True or verification.get("check_required") is False:
        return True
    if not verification.get("commands"):
        return False
    return await versions.verify_commands(distributions, fallback_binary=None)


async def detect_runtimes(db: Database) -> list[str]:
    """Canonical names of the DB runtimes this host can run (a native runtime always can)."""
    async with db.session() as session:
        rows = await runtime_rows.all_rows(session)
    found: list[str] = []
    for row in rows:
        config = row.execution_config if isinstance(row.execution_config, dict) else {}
        if commands.is_native(config):
            # Native actions run their own file; there is no interpreter to look for.
            found.append(NATIVE)
        elif await runtime_available(row.distributions):
            found.append(canonical_runtime_name(row.name))
        else:
            log.info("runtime %s is not available on this host", row.ref)
    return sorted(_unique(found))


async def choose_runtimes(
    db: Database, settings: Settings, environ: Mapping[str, str] | None = None
) -> list[str]:
    """``capabilities.runtimes``: the env list, else the configured list, else DB detection.

    The env list is ``ATTUNE_WORKER_RUNTIMES`` of ``environ`` when one is given (tests pass their
    own), else ``worker.runtimes``, which the settings loader reads from the same variable.
    """
    from_env = runtime_filter(environ) if environ is not None else settings.worker.runtimes
    if from_env:
        return _unique([canonical_runtime_name(name) for name in from_env])
    configured = (settings.worker.capabilities or {}).get("runtimes")
    if isinstance(configured, list) and configured:
        return _unique([canonical_runtime_name(str(name)) for name in configured])
    return await detect_runtimes(db)


def capabilities(settings: Settings, runtimes: Sequence[str]) -> dict[str, Any]:
    """The capabilities document: configured extra keys plus runtimes, capacity and version."""
    document = dict(settings.worker.capabilities or {})
    document.update(
        {
            "runtimes": list(runtimes),
            "max_concurrent_executions": settings.worker.max_concurrent_tasks,
            "worker_version": __version__,
        }
    )
    return document


async def runtime_rows_key(db: Database) -> tuple[int, ...]:
    """The ids of the runtime rows: when they change, the worker detects its runtimes again."""
    async with db.session() as session:
        return await runtime_rows.ids(session)


async def update_capabilities(db: Database, worker_id: int, caps: Mapping[str, Any]) -> None:
    """Publish new capabilities (for example, runtimes registered after the worker started)."""
    async with db.transaction() as session:
        await workers.set_capabilities(session, worker_id, caps)


async def register(
    db: Database,
    settings: Settings,
    caps: Mapping[str, Any],
    *,
    boot: str | None = None,
    now: datetime | None = None,
) -> tuple[int, str | None]:
    """Upsert this worker's row by name (status active, heartbeat ``now``: the platform clock's).

    Returns its id and the previous process's boot token (None for a new worker); ``boot`` is
    stored as this process's token in ``meta.boot``.
    """
    config = settings.worker
    worker_id, previous = await registration.register(
        db,
        registration.Registration(
            name=config.name,
            role=WorkerRole.ACTION,
            worker_type=config.worker_type,
            host=config.host,
            port=config.port,
            runtime_id=config.runtime_id,
            capabilities=caps,
            boot=boot,
        ),
        now=now,
    )
    log.info("registered worker %s (id %s) with runtimes %s", config.name, worker_id, caps.get("runtimes"))
    return worker_id, previous


async def heartbeat(db: Database, worker_id: int, *, now: datetime, active: bool = True) -> None:
    """Stamp ``last_heartbeat`` with ``now``; ``active`` also re-asserts the active status (a
    draining worker keeps heartbeating so its running executions are not declared abandoned, but
    stays inactive)."""
    await registration.set_state(db, worker_id, status=WorkerStatus.ACTIVE if active else None, now=now)


async def set_inactive(db: Database, worker_id: int) -> None:
    """Mark the worker inactive so the scheduler stops choosing it."""
    await registration.set_state(db, worker_id, status=WorkerStatus.INACTIVE, heartbeat=False)


#: Seconds between two heartbeat attempts while the database is unreachable.
HEARTBEAT_RETRY_SECONDS = 1.0


async def heartbeat_loop(
    db: Database,
    worker_id: int,
    interval: float,
    stop: asyncio.Event,
    *,
    clock: Clock,
    draining: asyncio.Event,
    after_beat: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Heartbeat every ``interval`` seconds of ``clock`` (first tick at once) until ``stop`` is set;
    each beat is stamped with ``clock.now()``, the time the liveness checks compare it with.

    Errors are logged and the loop goes on: a missed beat is better than a dead loop. After a
    failed beat (the database restarting) the next try comes sooner, so the worker is seen alive
    again as soon as the database is back. ``after_beat`` runs after each successful beat.
    """
    failing = False
    while not stop.is_set():
        try:
            await heartbeat(db, worker_id, now=clock.now(), active=not draining.is_set())
            if failing:
                log.info("worker heartbeat succeeded again")
            failing = False
            if after_beat is not None:
                await after_beat()
        except Exception as exc:
            if not failing:
                log.warning("worker heartbeat failed (%s); retrying every %g s", exc, HEARTBEAT_RETRY_SECONDS)
            failing = True
        await clock.wait(stop, min(interval, HEARTBEAT_RETRY_SECONDS) if failing else interval)


def serves(runtimes: Sequence[str], runtime_row: RuntimeRow, runtime_ref: str | None = None) -> bool:
    """Whether a runtime row is among ``runtimes`` (alias-aware; ``runtime_ref``'s last segment too)."""
    wanted = set(runtimes)
    names = {canonical_runtime_name(runtime_row.name)}
    if runtime_ref:
        names.add(canonical_runtime_name(runtime_ref.rsplit(".", 1)[-1]))
    config = runtime_row.execution_config if isinstance(runtime_row.execution_config, dict) else {}
    if commands.is_native(config):
        names.add(NATIVE)
    return bool(names & wanted)


async def verify_versions(db: Database, runtimes: Sequence[str]) -> dict[str, bool]:
    """Check every version of the runtimes served here; write ``available`` and ``verified_at``.

    Returns ``{"<runtime_ref>@<version>": available}``. Availability lives in the shared table, so
    the last worker to verify decides it for everyone (docs/packs.md).
    """
    async with db.session() as session:
        pairs = await runtime_rows.versions_with_runtimes(session)
    report: dict[str, bool] = {}
    for version, row in pairs:
        if not serves(runtimes, row, version.runtime_ref):
            continue
        config = version.execution_config if isinstance(version.execution_config, dict) else {}
        binary = commands.section(config, "interpreter").get("binary")
        try:
            available, checked = await versions.check_commands(
                version.distributions or {}, fallback_binary=binary if isinstance(binary, str) else None
            )
        except Exception:
            log.exception("verifying %s %s failed", version.runtime_ref, version.version)
            available, checked = False, None
        if available and not interpreters.runnable(binary, checked):
            # The version's own interpreter (``node20``) is missing and no verification command
            # proved another binary to be this version: it cannot run anything here.
            log.info(
                "%s %s: interpreter %r not found; unavailable", version.runtime_ref, version.version, binary
            )
            available = False
        async with db.transaction() as session:
            await runtime_rows.set_version_availability(session, version.id, available, now=utcnow())
        report[f"{version.runtime_ref}@{version.version}"] = available
    return report
