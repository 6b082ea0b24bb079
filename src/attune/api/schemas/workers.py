"""Worker schemas (Attune extension: the contract has only worker history)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from attune.api.schemas.common import ApiModel
from attune.domain.enums import WorkerRole, WorkerStatus, WorkerType


class WorkerResponse(ApiModel):
    """A registered action worker or sensor service; ``live`` = heartbeating recently."""

    id: int
    name: str
    worker_type: WorkerType
    worker_role: WorkerRole
    status: WorkerStatus
    host: str | None
    port: int | None
    capabilities: Any
    last_heartbeat: datetime | None
    live: bool
    created: datetime
    updated: datetime
