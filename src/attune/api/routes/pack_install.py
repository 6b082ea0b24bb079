"""Installing, upgrading and testing packs, and searching registries (docs/api.md; docs/packs.md).

``POST /packs/install`` and ``POST /packs/{ref}/upgrade`` answer once the install has finished,
or, with ``?stream=true``, stream NDJSON progress lines while it runs: ``{"event": "progress",
"stage", "message", "pack"?, "current"?, "total"?, "unit"?}``, a ``{"event": "heartbeat"}`` every
15 s of silence, then exactly one ``{"event": "result", "data": PackInstallResponse, "message"}``
or ``{"event": "error", "status", "code", "error"}``. An install keeps running (and stays atomic)
when the client disconnects.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from sqlalchemy.exc import IntegrityError

from attune.api.authz import require
from attune.api.deps import AUTH, ClaimsDep, PlatformDep
from attune.api.errors import describe_integrity_error
from attune.api.pagination import PageRequest, fetch_page, make_page, page_a
from attune.api.schemas.common import Data, Page
from attune.api.schemas.pack_install import (
    PackTestExecution,
    PackTestResult,
    RegistryHit,
    UpgradePack,
)
from attune.api.schemas.packs import InstallPack, PackInstallResponse, PackResponse
from attune.db import models
from attune.db.repos import pack_tests, packs
from attune.db.repos import packs as packs_repo
from attune.errors import AttuneError, BadRequest, NotFound
from attune.packs.install import index, installer
from attune.packs.install.envs import interpreter_of_pack
from attune.packs.install.progress import ProgressEvent
from attune.packs.install.tests import run_pack_tests, server_environment
from attune.packs.install.yamlio import load_yaml
from attune.platform import Platform

log = logging.getLogger(__name__)

# Installing code is a privileged act: once RBAC lands these routes need `manage` on packs.
router = APIRouter(prefix="/api/v1", tags=["packs"], dependencies=AUTH)

HEARTBEAT_SECONDS = 15.0
_RUNNING: set[asyncio.Task[None]] = set()

StreamOpt = Query(False, description="Stream NDJSON progress lines instead of one JSON answer")
INSTALL_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "model": Data[PackInstallResponse],
        "description": "The installed pack, or with `stream=true` NDJSON progress lines ending in a result",
        "content": {"application/x-ndjson": {}},
    }
}


async def _pack_or_404(platform: Platform, ref: str) -> models.Pack:
    async with platform.db.session() as session:
        pack = await packs.by_ref(session, ref)
    if pack is None:
        raise NotFound(f"Pack '{ref}' not found")
    return pack


async def _response(platform: Platform, outcome: installer.InstallOutcome) -> PackInstallResponse:
    async with platform.db.session() as session:
        pack = await packs.get(session, outcome.pack_id)
        if pack is None:  # uninstalled concurrently
            raise NotFound(f"Pack '{outcome.ref}' not found")
        body = PackResponse.model_validate(pack)
    return PackInstallResponse(
        pack=body,
        test_result=outcome.test_result,
        tests_skipped=outcome.tests_skipped,
        previous_version=outcome.previous_version,
        dependencies_installed=outcome.dependencies_installed,
        warnings=outcome.warnings,
    )


def _error_line(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, AttuneError):
        return {"event": "error", "status": exc.status, "code": exc.code, "error": exc.message}
    if isinstance(exc, IntegrityError):
        status, message, code = describe_integrity_error(exc)
        return {"event": "error", "status": status, "code": code, "error": message}
    return {
        "event": "error",
        "status": 500,
        "code": "INTERNAL_SERVER_ERROR",
        "error": "Internal server error",
    }


def _stream(
    work: Coroutine[Any, Any, PackInstallResponse], queue: asyncio.Queue[dict[str, Any] | None], message: str
) -> StreamingResponse:
    """Run ``work`` in its own task and stream what it puts on ``queue`` (see the module docstring)."""

    async def run() -> None:
        try:
            response = await work
            queue.put_nowait(
                {"event": "result", "data": response.model_dump(mode="json"), "message": message}
            )
        except Exception as exc:
            if not isinstance(exc, AttuneError | IntegrityError):
                log.exception("pack install failed")
            queue.put_nowait(_error_line(exc))
        finally:
            queue.put_nowait(None)

    task = asyncio.create_task(run(), name="pack-install")
    _RUNNING.add(task)
    task.add_done_callback(_RUNNING.discard)

    async def lines() -> AsyncIterator[str]:
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), HEARTBEAT_SECONDS)
            except TimeoutError:
                yield '{"event": "heartbeat"}\n'
                continue
            if item is None:
                return
            yield json.dumps(item) + "\n"

    return StreamingResponse(lines(), media_type="application/x-ndjson")


async def _install(
    platform: Platform, request: installer.InstallRequest, stream: bool, message: str
) -> Data[PackInstallResponse] | StreamingResponse:
    if not stream:
        outcome = await installer.install(platform, request)
        return Data(data=await _response(platform, outcome), message=message)
    queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

    def progress(event: ProgressEvent) -> None:
        queue.put_nowait({"event": "progress", **event.as_dict()})

    async def work() -> PackInstallResponse:
        return await _response(platform, await installer.install(platform, request, progress))

    return _stream(work(), queue, message)


@router.post(
    "/packs/install",
    response_model=None,
    responses=INSTALL_RESPONSES,
    dependencies=[require("packs", "manage")],
)
async def install(
    body: InstallPack, claims: ClaimsDep, platform: PlatformDep, stream: bool = StreamOpt
) -> Data[PackInstallResponse] | StreamingResponse:
    """Install a pack atomically from a directory or archive on the server, an archive URL, a git
    repository (``ref_spec`` = branch, tag or commit) or a registry ref ``name[@version]``.

    Dependencies are resolved first (missing ones come from the registries), the pack's
    environments are built and its tests run before it replaces an installed version; on any
    failure the installed version and the database stay as they were (400 with the reason, e.g.
    pip's own error). Configuration values of an installed pack are kept.
    """
    request = installer.InstallRequest(
        source=body.source,
        ref_spec=body.ref_spec,
        skip_tests=body.skip_tests,
        skip_deps=body.skip_deps,
        installed_by=claims.identity_id,
        fail_on_error=body.fail_on_error,
    )
    return await _install(platform, request, stream, "Pack installed successfully")


@router.get("/packs/registry/search", dependencies=[require("packs", "read")])
async def search_registries(
    platform: PlatformDep,
    q: str = Query(
        ..., min_length=1, max_length=200, description="Keyword (ref, label, description, keywords)"
    ),
    registry: str | None = Query(None, description="Only the registry index with this name"),
) -> Data[list[RegistryHit]]:
    """Search the server's registry indices (``pack_registry.indices``), highest priority first."""
    hits, warnings = await index.search(platform.settings.pack_registry, q, registry)
    for warning in warnings:
        log.warning("%s", warning)
    return Data(data=[RegistryHit.model_validate(hit) for hit in hits])


@router.post(
    "/packs/{ref}/upgrade",
    response_model=None,
    responses=INSTALL_RESPONSES,
    dependencies=[require("packs", "manage")],
)
async def upgrade(
    ref: str, body: UpgradePack, claims: ClaimsDep, platform: PlatformDep, stream: bool = StreamOpt
) -> Data[PackInstallResponse] | StreamingResponse:
    """Upgrade an installed pack from where it was installed (or ``source``), keeping its
    configuration values; refuses an older version unless ``allow_downgrade``."""
    pack = await _pack_or_404(platform, ref)
    source, ref_spec, kind = installer.upgrade_request(
        pack, source=body.source, version=body.version, ref_spec=body.ref_spec
    )
    request = installer.InstallRequest(
        source=source,
        ref_spec=ref_spec,
        kind=kind,
        skip_tests=body.skip_tests,
        skip_deps=body.skip_deps,
        installed_by=claims.identity_id,
        expect_ref=ref,
        allow_downgrade=body.allow_downgrade,
    )
    return await _install(platform, request, stream, "Pack upgraded successfully")


# -- pack tests --------------------------------------------------------------------------------


@router.post("/packs/{ref}/test", dependencies=[require("packs", "manage")])
async def test_pack(ref: str, platform: PlatformDep) -> Data[PackTestResult]:
    """Run the installed pack's tests now and store the run (trigger reason ``manual``)."""
    pack = await _pack_or_404(platform, ref)
    async with platform.db.session() as session:
        directory = await packs_repo.directory_of(session, platform.settings, ref)
    manifest_file = directory / "pack.yaml"
    if not await asyncio.to_thread(manifest_file.is_file):
        raise NotFound(f"Pack directory or pack.yaml not found for pack '{ref}': {directory}")
    try:
        manifest = await asyncio.to_thread(load_yaml, manifest_file)
    except Exception as exc:
        raise BadRequest(f"pack.yaml of pack '{ref}' cannot be read: {exc}") from exc
    testing = manifest.get("testing") if isinstance(manifest, dict) else None
    if not isinstance(testing, dict):
        raise BadRequest("No testing configuration found in pack.yaml")
    if testing.get("enabled") is not True:
        raise BadRequest("Testing is disabled for this pack")
    result = await asyncio.to_thread(
        run_pack_tests,
        directory,
        {"ref": ref, "version": manifest.get("version") or pack.version, "testing": testing},
        python=await asyncio.to_thread(interpreter_of_pack, platform.settings.envs_dir, ref),
        env=server_environment(directory, ref),
    )
    async with platform.db.transaction() as session:
        await pack_tests.record(session, pack.id, result, "manual")
    return Data(data=PackTestResult.model_validate(result), message="Pack tests executed successfully")


@router.get("/packs/{ref}/tests", dependencies=[require("packs", "read")])
async def list_tests(
    ref: str, platform: PlatformDep, page: PageRequest = Depends(page_a)
) -> Page[PackTestExecution]:
    """The pack's test runs, newest first."""
    pack = await _pack_or_404(platform, ref)
    async with platform.db.session() as session:
        rows, total = await fetch_page(session, pack_tests.list_query(pack.id), page)
        items = [PackTestExecution.of(row) for row in rows]
    return make_page(items, total, page)


@router.get("/packs/{ref}/tests/latest", dependencies=[require("packs", "read")])
async def latest_test(ref: str, platform: PlatformDep) -> Data[PackTestExecution]:
    pack = await _pack_or_404(platform, ref)
    async with platform.db.session() as session:
        row = await pack_tests.latest(session, pack.id)
        if row is None:
            raise NotFound(f"No test results found for pack '{ref}'")
        return Data(data=PackTestExecution.of(row))
