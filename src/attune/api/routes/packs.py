"""``/api/v1/packs`` (api.md §4.1, §5.9; packs.md §11–§12): CRUD, registration, installation, upload."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema.exceptions
from fastapi import APIRouter, Depends, File, Form, UploadFile
from sqlalchemy.exc import IntegrityError

from attune.api.deps import AUTH, ClaimsDep, RuntimeDep
from attune.api.errors import describe_integrity_error
from attune.api.pagination import PageRequest, fetch_page, make_page, page_a
from attune.api.schemas.common import Data, Page, Success
from attune.api.schemas.packs import (
    ComponentCounts,
    CreatePack,
    FailedPackRegistration,
    InstallPack,
    PackInstallResponse,
    PackRegisterResponse,
    PackResponse,
    PackSummary,
    RegisteredPack,
    RegisterPack,
    RegisterPacks,
    RegisterPacksResponse,
    RegisterPacksSummary,
    UpdatePack,
)
from attune.db.repos import packs
from attune.db.types import utcnow
from attune.domain import params, refs
from attune.errors import AttuneError, BadRequest, Conflict, NotFound, Unprocessable, ValidationFailed
from attune.packs import archive
from attune.packs.parser import parse_pack_dir
from attune.packs.register import register_pack
from attune.runtime import Runtime

router = APIRouter(prefix="/api/v1", tags=["packs"], dependencies=AUTH)

MAX_ARCHIVE_BYTES = 100 * 1024 * 1024
"""Largest accepted pack archive (the upload route's body limit)."""


# -- helpers ---------------------------------------------------------------------------------


def _resolve(raw: str, base: Path, exists: Callable[[Path], bool]) -> Path | None:
    path = Path(raw).expanduser()
    candidates = [path] if path.is_absolute() else [Path.cwd() / path, base / path]
    return next((candidate.resolve() for candidate in candidates if exists(candidate)), None)


def resolve_pack_path(raw: str, base: Path) -> Path | None:
    """An existing directory for ``raw``: absolute as is; relative against the cwd, then ``base``."""
    return _resolve(raw, base, Path.is_dir)


def _resolve_local_file(raw: str, base: Path) -> Path | None:
    return _resolve(raw, base, Path.is_file)


def checked_config(pack_ref: str, config: dict[str, Any], conf_schema: dict[str, Any]) -> dict[str, Any]:
    """``config`` with ``conf_schema`` defaults filled in, validated against the schema (packs.md §12)."""
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


async def _pack_response(runtime: Runtime, pack_id: int) -> PackResponse:
    async with runtime.db.session() as session:
        pack = await packs.get(session, pack_id)
        if pack is None:  # deleted concurrently
            raise NotFound(f"Pack with ID {pack_id} not found")
        return PackResponse.model_validate(pack)


def _is_within(path: Path, base: Path) -> bool:
    try:
        return path.resolve().is_relative_to(base.resolve())
    except OSError:
        return False


def _already_exists(ref: str) -> Conflict:
    return Conflict(f"Pack '{ref}' already exists. Use force=true to reinstall.")


async def _check_dependencies(runtime: Runtime, dependencies: list[str]) -> None:
    """Every ``dependencies`` entry (``ref[@constraint]``) must name an installed pack."""
    wanted = [entry.split("@", 1)[0].strip() for entry in dependencies]
    async with runtime.db.session() as session:
        installed = await packs.installed_refs(session, wanted)
    missing = [ref for ref in wanted if ref not in installed]
    if missing:
        lines = "\n".join(f"  - Pack '{ref}' is not installed" for ref in missing)
        raise BadRequest(f"Pack dependency validation failed:\n{lines}")


def _place(root: Path, target: Path, copy: bool) -> archive.PlacedPack | None:
    """Put ``root`` at ``target``; nothing to do when the pack already lives there."""
    if target.exists() and target.resolve() == root.resolve():
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    return archive.place_pack_dir(root, target, replace=True, copy=copy)


async def _install_tree(
    runtime: Runtime,
    root: Path,
    *,
    copy: bool,
    force: bool,
    skip_tests: bool,
    skip_deps: bool,
    installation: dict[str, Any],
) -> int:
    """Place the pack at ``root`` under ``{installed_packs_dir}/{ref}`` and register it; return its id.

    The previous directory of a reinstalled pack is restored when registration fails.
    """
    parsed = await asyncio.to_thread(parse_pack_dir, root)
    ref = parsed.pack.ref
    if not skip_deps:
        await _check_dependencies(runtime, parsed.pack.dependencies)
    base = runtime.settings.install_dir
    target = (base / ref).absolute()
    if not force:
        async with runtime.db.session() as session:
            exists = await packs.by_ref(session, ref) is not None
        if exists or await asyncio.to_thread(target.exists):
            raise _already_exists(ref)
    placed = await asyncio.to_thread(_place, root, target, copy)
    try:
        result = await register_pack(
            runtime,
            target,
            force=force,
            skip_tests=skip_tests,
            installation={**installation, "storage_path": str(target)},
        )
    except BaseException:
        if placed is not None:
            await asyncio.to_thread(placed.rollback)
        raise
    if placed is not None:
        await asyncio.to_thread(placed.commit)
    return result.pack.id


def _installation(
    claims_identity: int,
    source_type: str,
    source_url: str | None,
    checksum: str | None,
    source_ref: str | None,
) -> dict[str, Any]:
    return {
        "source_type": source_type,
        "source_url": source_url,
        "source_ref": source_ref,
        "checksum": checksum,
        "checksum_verified": False,  # computed here, not compared with a published checksum
        "installation_method": "api",
        "installed_at": utcnow(),
        "installed_by": claims_identity,
    }


def source_kind(source: str, ref_spec: str | None, base: Path) -> str:
    """Classify an install source (api.md §5.9 step 1)."""
    lowered = source.lower()
    if lowered.startswith(("http://", "https://")):
        return "git" if lowered.endswith(".git") or ref_spec else "archive"
    if lowered.startswith("git@") or "git://" in lowered:
        return "git"
    if _resolve_local_file(source, base) is not None:
        return "local_archive"
    if resolve_pack_path(source, base) is not None:
        return "local_directory"
    return "registry"


# -- list and CRUD ---------------------------------------------------------------------------


@router.get("/packs")
async def list_packs(runtime: RuntimeDep, page: PageRequest = Depends(page_a)) -> Page[PackSummary]:
    """Every pack, ref ascending."""
    async with runtime.db.session() as session:
        rows, total = await fetch_page(session, packs.list_query(), page)
        items = [PackSummary.model_validate(row) for row in rows]
    return make_page(items, total, page)


@router.post("/packs", status_code=201)
async def create_pack(body: CreatePack, runtime: RuntimeDep) -> Data[PackResponse]:
    """Create an empty pack. ``config`` is validated against ``conf_schema`` and gets its defaults."""
    if not refs.is_pack_ref(body.ref):
        raise Unprocessable("Validation constraint failed: pack_ref_format")
    _check_version(body.version)
    values = body.model_dump()
    values["config"] = checked_config(body.ref, body.config, body.conf_schema)
    async with runtime.db.transaction() as session:
        if await packs.by_ref(session, body.ref) is not None:
            raise Conflict(f"Pack with ref '{body.ref}' already exists")
        pack = await packs.create(session, values)
        response = PackResponse.model_validate(pack)
    return Data(data=response, message="Pack created successfully")


# Static POST paths are declared before the ``{ref}`` routes.


@router.post("/packs/register", status_code=201)
async def register(body: RegisterPack, runtime: RuntimeDep) -> Data[PackRegisterResponse]:
    """Register a pack directory on the server in place (packs.md §11.3).

    A relative ``path`` is resolved against the server's working directory, then against
    ``packs_base_dir``. An existing ref needs ``force``; re-registering is an idempotent upsert
    that keeps ids and ad-hoc rules and removes components the pack no longer ships.
    """
    path = resolve_pack_path(body.path, runtime.settings.packs_base_dir)
    if path is None:
        raise BadRequest(f"Pack directory does not exist: {body.path}")
    result = await register_pack(runtime, path, force=body.force, skip_tests=body.skip_tests)
    pack = await _pack_response(runtime, result.pack.id)
    # No pack test runs during registration yet (see the warning register_pack logs), so the
    # tests were skipped whatever the request asked; ``test_result`` stays null.
    data = PackRegisterResponse(**pack.model_dump(), pack=pack, tests_skipped=True)
    return Data(data=data, message="Pack registered successfully")


@router.post("/packs/register-batch")
async def register_batch(body: RegisterPacks, runtime: RuntimeDep) -> Data[RegisterPacksResponse]:
    """Register several directories in place; failures are reported, never raised.

    Unlike older servers, ``components_registered`` holds the pack's real component counts and
    ``storage_path`` is the directory that was registered.
    """
    started = time.monotonic()
    registered: list[RegisteredPack] = []
    failed: list[FailedPackRegistration] = []
    for raw in body.pack_paths:
        path = resolve_pack_path(raw, runtime.settings.packs_base_dir)
        try:
            if path is None:
                raise BadRequest(f"Pack directory does not exist: {raw}")
            result = await register_pack(runtime, path, force=body.force, skip_tests=body.skip_tests)
        except AttuneError as exc:
            failed.append(FailedPackRegistration(pack_path=raw, error=exc.message))
            continue
        except IntegrityError as exc:
            failed.append(FailedPackRegistration(pack_path=raw, error=describe_integrity_error(exc)[1]))
            continue
        async with runtime.db.session() as session:
            counts = await packs.component_counts(session, result.pack.id)
        registered.append(
            RegisteredPack(
                pack_ref=result.pack.ref,
                pack_id=result.pack.id,
                pack_version=result.pack.version,
                storage_path=str(path),
                components_registered=ComponentCounts(**counts),
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


@router.post("/packs/install")
async def install(body: InstallPack, claims: ClaimsDep, runtime: RuntimeDep) -> Data[PackInstallResponse]:
    """Install a pack from a local directory or a local ``.tar.gz`` on the server.

    The pack is copied to ``{installed_packs_dir}/{ref}`` (default ``{data_dir}/packs``, replacing
    an existing copy) and registered
    with force, so ad-hoc rules survive. Unless ``skip_deps``, every pack named in
    ``dependencies`` must already be installed. Git, remote archive and registry sources answer
    400 for now.
    """
    base = runtime.settings.packs_base_dir
    kind = source_kind(body.source, body.ref_spec, base)
    common = {"force": True, "skip_tests": body.skip_tests, "skip_deps": body.skip_deps}
    if kind == "local_directory":
        directory = resolve_pack_path(body.source, base)
        assert directory is not None
        installation = _installation(claims.identity_id, kind, str(directory), None, body.ref_spec)
        pack_id = await _install_tree(runtime, directory, copy=True, installation=installation, **common)
    elif kind == "local_archive":
        file = _resolve_local_file(body.source, base)
        assert file is not None
        pack_id = await _install_archive(
            runtime, file, str(file), claims.identity_id, body.ref_spec, **common
        )
    else:
        raise BadRequest(f"Installing from {kind} sources is not supported yet")
    response = PackInstallResponse(pack=await _pack_response(runtime, pack_id), tests_skipped=body.skip_tests)
    return Data(data=response)


async def _install_archive(
    runtime: Runtime,
    file: Path,
    source_url: str | None,
    identity_id: int,
    source_ref: str | None,
    *,
    force: bool,
    skip_tests: bool,
    skip_deps: bool,
) -> int:
    """Extract ``file`` in a staging directory under installed_packs_dir and install the pack in it."""
    base = runtime.settings.install_dir
    base.mkdir(parents=True, exist_ok=True)
    with archive.staging_dir(base) as stage:
        checksum = await asyncio.to_thread(archive.sha256_file, file)
        extracted = stage / "extracted"
        extracted.mkdir()
        await asyncio.to_thread(archive.extract_archive, file, extracted)
        root = archive.find_pack_root(extracted)
        installation = _installation(identity_id, "local_archive", source_url, checksum, source_ref)
        return await _install_tree(
            runtime,
            root,
            copy=False,
            force=force,
            skip_tests=skip_tests,
            skip_deps=skip_deps,
            installation=installation,
        )


@router.post("/packs/upload", status_code=201)
async def upload(
    claims: ClaimsDep,
    runtime: RuntimeDep,
    file: UploadFile | None = File(
        None, description="A .tar.gz of a pack directory (files at the root or in one folder)"
    ),
    pack: UploadFile | None = File(None, description="The same as `file` (what Attune's own clients send)"),
    force: bool = Form(False, description="Replace an installed pack with the same ref"),
    skip_tests: bool = Form(False, description="Do not run the pack's tests"),
) -> Data[PackResponse]:
    """Attune extension: upload a pack archive and install it (multipart/form-data).

    Form fields: ``file`` or ``pack`` (a ``.tar.gz`` whose pack files sit at the archive root or
    inside one top-level directory, at most 100 MiB), ``force`` and ``skip_tests`` (booleans,
    default false). The archive is extracted safely (no absolute paths, ``..``, outside links or
    device files), moved to ``{installed_packs_dir}/{ref}`` (default ``{data_dir}/packs``, never
    the source checkout) and registered with installation metadata
    (``source_type = local_archive``, the archive's SHA-256, the uploader). An existing ref
    without ``force`` gives 409; an unreadable or unsafe archive or no file gives 400.
    """
    sent = file or pack
    if sent is None:
        raise BadRequest("No pack archive: send it in the multipart field 'file' (or 'pack')")
    base = runtime.settings.install_dir
    base.mkdir(parents=True, exist_ok=True)
    with archive.staging_dir(base) as stage:
        saved = stage / "upload.tar.gz"
        await asyncio.to_thread(archive.copy_stream, sent.file, saved, max_bytes=MAX_ARCHIVE_BYTES)
        pack_id = await _install_archive(
            runtime,
            saved,
            sent.filename or None,
            claims.identity_id,
            None,
            force=force,
            skip_tests=skip_tests,
            skip_deps=True,
        )
    return Data(
        data=await _pack_response(runtime, pack_id), message="Pack uploaded and registered successfully"
    )


# -- single pack -----------------------------------------------------------------------------


@router.get("/packs/{ref}")
async def get_pack(ref: str, runtime: RuntimeDep) -> Data[PackResponse]:
    async with runtime.db.session() as session:
        pack = await packs.by_ref(session, ref)
        if pack is None:
            raise NotFound(f"Pack '{ref}' not found")
        return Data(data=PackResponse.model_validate(pack))


@router.put("/packs/{ref}")
async def update_pack(ref: str, body: UpdatePack, runtime: RuntimeDep) -> Data[PackResponse]:
    """Change a pack; absent or null fields stay as they are. ``config`` is re-validated."""
    values = {key: getattr(body, key) for key in body.model_fields_set if getattr(body, key) is not None}
    if "version" in values:
        _check_version(values["version"])
    async with runtime.db.transaction() as session:
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


@router.delete("/packs/{ref}")
async def delete_pack(ref: str, runtime: RuntimeDep) -> Success:
    """Delete a pack and (cascading) its components; system packs cannot be deleted.

    ``{installed_packs_dir}/{ref}`` (or ``{packs_base_dir}/{ref}``) is removed afterwards (best
    effort) when the pack was stored there; a pack registered in place elsewhere keeps its files.
    """
    async with runtime.db.transaction() as session:
        pack = await packs.by_ref(session, ref)
        if pack is None:
            raise NotFound(f"Pack '{ref}' not found")
        if pack.is_standard:
            raise Conflict(f"Pack '{ref}' is a system pack and cannot be deleted")
        storage_path = pack.storage_path
        await packs.delete(session, pack.id)
    for base in (runtime.settings.install_dir, runtime.settings.packs_base_dir):
        if storage_path and _is_within(Path(storage_path), base):
            await asyncio.to_thread(archive.remove_tree, base / ref)
    return Success(message=f"Pack '{ref}' deleted successfully")
