"""Health probes (docs/api.md), no auth."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from attune import __version__
from attune.api.deps import PlatformDep

router = APIRouter(tags=["health"])


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/health/detailed")
async def health_detailed(platform: PlatformDep) -> Response:
    if await platform.db.ping():
        return JSONResponse({"status": "ok", "version": __version__, "database": "connected"})
    return JSONResponse(
        {"status": "error", "database": "disconnected", "error": "Database connectivity check failed"},
        status_code=503,
    )


@router.get("/health/ready")
async def health_ready(platform: PlatformDep) -> Response:
    return Response(status_code=200 if await platform.db.ping() else 503)


@router.get("/health/live")
async def health_live() -> Response:
    return Response(status_code=200)
