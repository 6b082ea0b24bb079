"""``/api/v1/packs`` (docs/api.md; docs/packs.md): CRUD, registration, installation, upload."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema.exceptions
from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from sqlalchemy.exc import IntegrityError

from attune.api.authz import grants_changed, require
from attune.api.deps import AUTH, ClaimsDep, PlatformDep
from attune.api.errors import describe_integrity_error
from attune.api.pagination import PageRequest, fetch_page, make_page, page_a
from attune.api.schemas.common import Data, Page, Success
from attune.api.schemas.packs import (
    ComponentCounts,
    CreatePack,
    FailedPackRegistration,
    PackRegisterResponse,
    PackResponse,
    PackSummary,
    PackUploadResponse,
    RegisteredPack,
    RegisterPack,
    RegisterPacks,
    RegisterPacksResponse,
    RegisterPacksSummary,
    UpdatePack,
)
from attune.db.repos import packs
from attune.domain import params, refs
from attune.errors import AttuneError, BadRequest, Conflict, NotFound, Unprocessable, ValidationFailed
from attune.packs import archive
from attune.packs.install import envs, installer
from attune.packs.install.sources import expand_user
from attune.packs.register import register_pack
from attune.platform import Platform

router = APIRouter(prefix="/api/v1", tags=["packs"], dependencies=AUTH)

MAX_ARCHIVE_BYTES = 100 * 1024 * 1024
"""Largest accepted pack archive (the upload route's body limit)."""


# -- helpers ---------------------------------------------------------------------------------


def _resolve(raw: str, base: Path, exists: Callable[[Path], bool]) -> Path | None:
    path = expand_user(Path(raw))
    candidates = [path] if path.is_absolute() else [Path.cwd() / path, base / path]
    return next((candidate.resolve() for candidate in candidates if exists(candidate)), None)


def resolve_pack_path(raw: str, base: Path) -> Path | None:
    """An existing directory for ``raw``: absolute as is; relative against the cwd, then ``base``."""
    return _resolve(raw, base, Path.is_dir)


def checked_config(pack_ref: str, config: dict[str, Any], conf_schema: dict[str, Any]) -> dict[str, Any]:
    """``config`` with ``conf_schema`` defaults filled in, validated against the schema (docs/packs.md)."""
    filled = params.apply_defaults(config, conf_schema)
    try:
        problems = params.schema_errors(filled, conf_schema)
    except (jsonschema.exceptions.SchemaError, re.error) as exc:
        detail = exc.message if isinstance(exc, jsonschema.exceptions.SchemaError) else str(exc)
        raise ValidationFailed(f"Invalid conf_schema for pack '{pack_ref}': {detail}") from exc
    if problems:
        raise ValidationFailed(f"Invalid config for pack '{pack_ref}': {', '.join(problems)}")
    return filled


def _check_version(version: str) -> None:
    if not refs.is_semver(version):
        raise Unprocessable("Validation constraint failed: pack_version_semver")


async def _pack_response(platform: Platform, pack_id: int) -> PackResponse:
    async with platform.db.session() as session:
        pack = await packs.get(session, pack_id)
        if pack is None:  # deleted concurrently
            raise NotFound(f"Pack with ID {pack_id} not found")
        return PackResponse.model_validate(pack)


def _is_within(path: Path, base: Path) -> bool:
    try:
        return path.resolve().is_relative_to(base.resolve())
    except OSError:
        return False


# -- list and CRUD ---------------------------------------------------------------------------


@router.get("/packs", dependencies=[require("packs", "read")])
async def list_packs(platform: PlatformDep, page: PageRequest = Depends(page_a)) -> Page[PackSummary]:
    """Every pack, ref ascending."""
    async with platform.db.session() as session:
        rows, total = await fetch_page(session, packs.list_query(), page)
        items = [PackSummary.model_validate(row) for row in rows]
    return make_page(items, total, page)


@router.post("/packs", status_code=201, dependencies=[require("packs", "create")])
async def create_pack(body: CreatePack, platform: PlatformDep) -> Data[PackResponse]:
    """Create an empty pack. ``config`` is validated against ``conf_schema`` and gets its defaults."""
    if not refs.is_pack_ref(body.ref):
        raise Unprocessable("Validation constraint failed: pack_ref_format")
    _check_version(body.version)
    values = body.model_dump()
    values["config"] = checked_config(body.ref, body.config, body.conf_schema)
    async with platform.db.transaction() as session:
        if await packs.by_ref(session, body.ref) is not None:
            raise Conflict(f"Pack with ref '{body.ref}' already exists")
        pack = await packs.create(session, values)
        response = PackResponse.model_validate(pack)
    return Data(data=response, message="Pack created successfully")


# Static POST paths are declared before the ``{ref}`` routes.


@router.post("/packs/register", status_code=201, dependencies=[require("packs", "manage")])
async def register(body: RegisterPack, platform: PlatformDep) -> Data[PackRegisterResponse]:
    """Register a pack directory on the server in place (docs/packs.md).

    A relative ``path`` is resolved against the server's working directory, then against
    ``packs_base_dir``. An existing ref needs ``force``; re-registering is an idempotent upsert
    that keeps ids and ad-hoc rules and removes components the pack no longer ships. Files that
    cannot be loaded are skipped and listed in ``warnings`` (``fail_on_error`` refuses instead).
    """
    path = resolve_pack_path(body.path, platform.settings.packs_base_dir)
    if path is None:
        raise BadRequest(f"Pack directory does not exist: {body.path}")
    result = await register_pack(
        platform, path, force=body.force, skip_tests=body.skip_tests, fail_on_error=body.fail_on_error
    )
    pack = await _pack_response(platform, result.pack.id)
    # The PackResponse fields, plus ``pack``/``tests_skipped``/``test_result`` as /packs/install
    # answers (a superset: clients reading either shape work).
    response = PackRegisterResponse(
        **pack.model_dump(),
        warnings=result.warnings,
        pack=pack,
        tests_skipped=result.test_result is None,
        test_result=result.test_result,
    )
    return Data(data=response, message="Pack registered successfully")


@router.post("/packs/register-batch", dependencies=[require("packs", "manage")])
async def register_batch(body: RegisterPacks, platform: PlatformDep) -> Data[RegisterPacksResponse]:
    """Register several directories in place; failures are reported, never raised.

    Unlike older servers, ``components_registered`` holds the pack's real component counts and
    ``storage_path`` is the directory that was registered.
    """
    started = time.monotonic()
    registered: list[RegisteredPack] = []
    failed: list[FailedPackRegistration] = []
    for raw in body.pack_paths:
        path = resolve_pack_path(raw, platform.settings.packs_base_dir)
        try:
            if path is None:
                raise BadRequest(f"Pack directory does not exist: {raw}")
            result = await register_pack(
                platform, path, force=body.force, skip_tests=body.skip_tests, fail_on_error=body.fail_on_error
            )
        except AttuneError as exc:
            failed.append(FailedPackRegistration(pack_path=raw, error=exc.message))
            continue
        except IntegrityError as exc:
            failed.append(FailedPackRegistration(pack_path=raw, error=describe_integrity_error(exc)[1]))
            continue
        async with platform.db.session() as session:
            counts = await packs.component_counts(session, result.pack.id)
        registered.append(
            RegisteredPack(
                pack_ref=result.pack.ref,
                pack_id=result.pack.id,
                pack_version=result.pack.version,
                storage_path=str(path),
                components_registered=ComponentCounts(**counts),
                warnings=result.warnings,
            )
        )
    summary = RegisterPacksSummary(
        total_packs=len(body.pack_paths),
        success_count=len(registered),
        failure_count=len(failed),
        total_components=sum(
            p.components_registered.actions
            + p.components_registered.sensors
            + p.components_registered.triggers
            + p.components_registered.rules
            + p.components_registered.workflows
            for p in registered
        ),
        duration_ms=int((time.monotonic() - started) * 1000),
    )
    return Data(data=RegisterPacksResponse(registered_packs=registered, failed_packs=failed, summary=summary))


@router.post("/packs/upload", status_code=201, dependencies=[require("packs", "manage")])
async def upload(
    claims: ClaimsDep,
    platform: PlatformDep,
    file: UploadFile | None = File(None, description="A .tar.gz or .zip of a pack directory"),
    pack: UploadFile | None = File(None, description="The same as `file` (what Attune's own clients send)"),
    force: bool = Form(False, description="Replace an installed pack with the same ref"),
    skip_tests: bool = Form(False, description="Do not run the pack's tests"),
    skip_deps: bool = Form(False, description="Do not check or install the pack's dependencies"),
    fail_on_error: bool = Form(
        False, description="Refuse the pack (422) instead of skipping files it cannot load (for CI)"
    ),
) -> Data[PackUploadResponse]:
    """Attune extension: upload a pack archive and install it (multipart/form-data).

    Form fields: ``file`` or ``pack`` (a ``.tar.gz`` or ``.zip`` whose pack files sit at the archive root, in
    ``pack/`` or in a first-level directory, at most 100 MiB), ``force``, ``skip_tests``,
    ``skip_deps`` and ``fail_on_error`` (booleans, default false). The answer lists skipped files in
    ``warnings`` as ``/packs/register`` does.
    The archive is extracted safely (no absolute paths, ``..``, outside links or device files) and
    installed like ``POST /packs/install`` does (environments built and tests run before the pack
    replaces anything), with ``source_type = local_archive``. An existing ref without ``force``
    gives 409; an unreadable or unsafe archive, or none, gives 400. The pack lands in
    ``{installed_packs_dir}/{ref}`` (default ``{data_dir}/packs``), never a source checkout.
    """
    sent = file or pack
    if sent is None:
        raise BadRequest("No pack archive: send it in the multipart field 'file' (or 'pack')")
    with archive.staging_dir(platform.settings.data_dir / "pack_uploads") as stage:
        saved = stage / "upload.tar.gz"
        await asyncio.to_thread(archive.copy_stream, sent.file, saved, max_bytes=MAX_ARCHIVE_BYTES)
        request = installer.InstallRequest(
            source=str(saved),
            kind="local_archive",
            source_label=sent.filename or None,
            skip_tests=skip_tests,
            skip_deps=skip_deps,
            replace=force,
            installed_by=claims.identity_id,
            fail_on_error=fail_on_error,
        )
        outcome = await installer.install(platform, request)
    pack_body = await _pack_response(platform, outcome.pack_id)
    return Data(
        data=PackUploadResponse(**pack_body.model_dump(), warnings=outcome.warnings),
        message="Pack uploaded and registered successfully",
    )


# -- single pack -----------------------------------------------------------------------------


@router.get("/packs/{ref}", dependencies=[require("packs", "read")])
async def get_pack(ref: str, platform: PlatformDep) -> Data[PackResponse]:
    async with platform.db.session() as session:
        pack = await packs.by_ref(session, ref)
        if pack is None:
            raise NotFound(f"Pack '{ref}' not found")
        return Data(data=PackResponse.model_validate(pack))


@router.put("/packs/{ref}", dependencies=[require("packs", "update")])
async def update_pack(ref: str, body: UpdatePack, platform: PlatformDep) -> Data[PackResponse]:
    """Change a pack; absent or null fields stay as they are. ``config`` is re-validated."""
    values = {key: getattr(body, key) for key in body.model_fields_set if getattr(body, key) is not None}
    if "version" in values:
        _check_version(values["version"])
    async with platform.db.transaction() as session:
        pack = await packs.by_ref(session, ref)
        if pack is None:
            raise NotFound(f"Pack '{ref}' not found")
        if "config" in values or "conf_schema" in values:
            values["config"] = checked_config(
                ref, values.get("config", pack.config), values.get("conf_schema", pack.conf_schema)
            )
        await packs.update(session, pack, values)
        response = PackResponse.model_validate(pack)
    return Data(data=response, message="Pack updated successfully")


@router.delete("/packs/{ref}", dependencies=[require("packs", "manage")])
async def delete_pack(
    ref: str,
    request: Request,
    platform: PlatformDep,
    force: bool = Query(False, description="Uninstall even when other packs depend on this one"),
) -> Success:
    """Uninstall a pack: its rows (cascading to its components), environments and directory.

    System packs cannot be deleted; a pack other packs depend on needs ``force``. Executions keep
    their action refs. ``{installed_packs_dir}/{ref}`` (or ``{packs_base_dir}/{ref}``) is removed
    (best effort) when the pack was stored there; a pack registered in place elsewhere keeps its files.
    """
    async with platform.db.transaction() as session:
        pack = await packs.by_ref(session, ref)
        if pack is None:
            raise NotFound(f"Pack '{ref}' not found")
        if pack.is_standard:
            raise Conflict(f"Pack '{ref}' is a system pack and cannot be deleted")
        dependents = await packs.dependents(session, ref)
        if dependents and not force:
            names = ", ".join(f"'{owner}' ({entry})" for owner, entry in dependents)
            raise Conflict(f"Pack '{ref}' is required by {names}. Use force=true to uninstall it anyway.")
        storage_path = pack.storage_path
        await packs.delete(session, pack.id)
    grants_changed(request)  # the pack's permission sets went with it
    for base in (platform.settings.install_dir, platform.settings.packs_base_dir):
        if storage_path and _is_within(Path(storage_path), base):
            await asyncio.to_thread(archive.remove_tree, base / ref)
    await asyncio.to_thread(envs.remove_all, platform.settings.envs_dir, ref)
    return Success(message=f"Pack '{ref}' deleted successfully")
