"""``/api/v1/workers``: who can run work right now (Attune extension, in the style of docs/api.md)."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Depends

from attune.api.authz import require
from attune.api.deps import AUTH, PlatformDep
from attune.api.pagination import PageRequest, fetch_page, make_page, page_a
from attune.api.schemas.common import Data, Page
from attune.api.schemas.workers import WorkerResponse
from attune.db.models import Worker
from attune.db.repos import workers
from attune.domain.enums import WorkerStatus
from attune.errors import NotFound
from attune.platform import Platform

router = APIRouter(prefix="/api/v1", tags=["workers"], dependencies=AUTH)


def _response(worker: Worker, platform: Platform) -> WorkerResponse:
    # The same liveness rule the scheduler uses: active and heartbeating within 1.5 intervals.
    interval = (
        platform.settings.sensor.heartbeat_interval
        if worker.worker_role == "sensor"
        else platform.settings.worker.heartbeat_interval
    )
    fresh = worker.last_heartbeat is not None and worker.last_heartbeat >= platform.clock.now() - timedelta(
        seconds=1.5 * interval
    )
    data = {column: getattr(worker, column) for column in WorkerResponse.model_fields if column != "live"}
    return WorkerResponse(**data, live=fresh and worker.status == WorkerStatus.ACTIVE.value)


@router.get("/workers", dependencies=[require("workers", "read")])
async def list_workers(platform: PlatformDep, paging: PageRequest = Depends(page_a)) -> Page[WorkerResponse]:
    """Registered workers and sensor services, by name."""
    async with platform.db.session() as session:
        rows, total = await fetch_page(session, workers.by_name_query(), paging)
    return make_page([_response(row, platform) for row in rows], total, paging)


@router.get("/workers/{id}", dependencies=[require("workers", "read")])
async def get_worker(id: int, platform: PlatformDep) -> Data[WorkerResponse]:
    async with platform.db.session() as session:
        worker = await workers.by_id(session, id)
    if worker is None:
        raise NotFound(f"Worker with ID {id} not found")
    return Data(data=_response(worker, platform))
