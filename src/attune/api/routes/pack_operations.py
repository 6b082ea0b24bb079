"""The building blocks of ``core.install_packs`` (docs/api.md, docs/packs.md): download a pack,
list its dependencies, build its environments. Each step does what ``POST /packs/install`` does,
without the atomic swap.
"""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from fastapi import APIRouter

from attune.api.authz import require
from attune.api.deps import AUTH, PlatformDep
from attune.api.routes.packs import resolve_pack_path
from attune.api.schemas.common import Data
from attune.api.schemas.pack_operations import (
    AnalyzedPack,
    BuildPackEnvs,
    BuildPackEnvsResponse,
    BuildSummary,
    BuiltEnvironments,
    DownloadedPack,
    DownloadPacks,
    DownloadPacksResponse,
    FailedEnvironment,
    FailedSource,
    PackDependencies,
    PackDependenciesResponse,
    PackDependency,
    PathError,
)
from attune.db.repos import packs
from attune.errors import AttuneError
from attune.packs.install import envs, installer, versions
from attune.packs.manifest import ParsedPack
from attune.packs.parser import parse_pack_dir
from attune.platform import Platform
from attune.worker import environments

# Installing code is a privileged act: once RBAC lands these routes need `manage` on packs.
router = APIRouter(prefix="/api/v1", tags=["packs"], dependencies=AUTH)

DOWNLOAD_RETENTION_SECONDS = 24 * 3600


def _prune_downloads(root: Path) -> None:
    """Downloads are scratch space for the next step; forget them after a day."""
    if not root.is_dir():
        return
    cutoff = time.time() - DOWNLOAD_RETENTION_SECONDS
    for entry in root.iterdir():
        if entry.stat().st_mtime < cutoff:
            shutil.rmtree(entry, ignore_errors=True)


@router.post("/packs/download", dependencies=[require("packs", "manage")])
async def download(body: DownloadPacks, platform: PlatformDep) -> Data[DownloadPacksResponse]:
    """Fetch each source (git, archive URL, local path or registry ref) into its own server
    directory under ``{data_dir}/pack_downloads`` (kept for a day); registry checksums are verified."""
    root = platform.settings.data_dir / "pack_downloads"
    await asyncio.to_thread(_prune_downloads, root)
    done: list[DownloadedPack] = []
    failed: list[FailedSource] = []
    for source in body.packs:
        workdir = root / uuid.uuid4().hex
        await asyncio.to_thread(workdir.mkdir, parents=True)
        try:
            staged = await installer.download(platform, source, body.ref_spec, workdir)
        except AttuneError as exc:
            await asyncio.to_thread(shutil.rmtree, workdir, True)
            failed.append(FailedSource(source=source, error=exc.message))
            continue
        done.append(
            DownloadedPack(
                source=source,
                source_type=staged.source_type,
                pack_path=str(staged.fetched.root),
                pack_ref=staged.ref,
                pack_version=staged.version,
                git_commit=staged.fetched.git_commit,
                checksum=f"sha256:{staged.checksum}",
            )
        )
    response = DownloadPacksResponse(
        downloaded_packs=done,
        failed_packs=failed,
        total_count=len(body.packs),
        success_count=len(done),
        failure_count=len(failed),
    )
    return Data(data=response)


def _parse(raw: str, base: Path) -> ParsedPack:
    path = resolve_pack_path(raw, base)
    if path is None:
        raise FileNotFoundError(f"Pack directory does not exist: {raw}")
    return parse_pack_dir(path)


@router.post("/packs/dependencies", dependencies=[require("packs", "read")])
async def dependencies(body: PackDependencies, platform: PlatformDep) -> Data[PackDependenciesResponse]:
    """The dependencies and runtime requirements of pack directories on the server.

    A dependency counts as installed only when the installed version meets its constraint.
    """
    async with platform.db.session() as session:
        installed = await packs.installed_versions(session)
    found: list[PackDependency] = []
    requirements: dict[str, Any] = {}
    analyzed: list[AnalyzedPack] = []
    errors: list[PathError] = []
    for raw in body.pack_paths:
        try:
            parsed = await asyncio.to_thread(_parse, raw, platform.settings.packs_base_dir)
        except (AttuneError, OSError) as exc:
            errors.append(PathError(pack_path=raw, error=getattr(exc, "message", None) or str(exc)))
            continue
        spec = parsed.pack
        for entry in spec.dependencies:
            dependency = versions.parse_dependency(entry)
            have = installed.get(dependency.ref)
            found.append(
                PackDependency(
                    pack_ref=dependency.ref,
                    version_spec=dependency.constraint,
                    required_by=spec.ref,
                    already_installed=have is not None and versions.satisfies(have, dependency.constraint),
                )
            )
        python = spec.path / "requirements.txt"
        node = spec.path / "package.json"
        requirements[spec.ref] = {
            "pack_ref": spec.ref,
            "python": {"version": spec.python, "requirements_file": str(python) if python.is_file() else None}
            if spec.python or python.is_file()
            else None,
            "nodejs": {"version": spec.nodejs, "package_file": str(node) if node.is_file() else None}
            if spec.nodejs or node.is_file()
            else None,
        }
        analyzed.append(
            AnalyzedPack(
                pack_ref=spec.ref,
                pack_path=str(spec.path),
                has_dependencies=bool(spec.dependencies),
                dependency_count=len(spec.dependencies),
            )
        )
    response = PackDependenciesResponse(
        dependencies=found,
        runtime_requirements=requirements,
        missing_dependencies=[d for d in found if not d.already_installed],
        analyzed_packs=analyzed,
        errors=errors,
    )
    return Data(data=response)


def _package_count(env_dir: Path, node: bool) -> int:
    if node:
        modules = env_dir / "node_modules"
        return len([p for p in modules.iterdir() if not p.name.startswith(".")]) if modules.is_dir() else 0
    return len(list(env_dir.glob("lib/python*/site-packages/*.dist-info")))


async def _build_pack(
    platform: Platform, parsed: ParsedPack, body: BuildPackEnvs, failed: list[FailedEnvironment]
) -> tuple[dict[str, Any], int, int]:
    """(environments, python built, node built) for one pack; failures go to ``failed``."""
    settings = platform.settings
    spec = parsed.pack
    async with platform.db.session() as session:
        targets = await envs.plan(session, parsed, spec.path, settings.envs_dir)
    result: dict[str, Any] = {}
    counts = [0, 0]
    for target in targets:
        node = target.runtime_name.startswith("node")
        if (node and body.skip_nodejs) or (not node and body.skip_python):
            continue
        if body.force_rebuild:
            await asyncio.to_thread(envs.remove_path, target.final_dir)
        report = await environments.ensure_environment(
            spec.path,
            target.final_dir,
            target.config,
            timeout=body.timeout,
            extra_env=envs.pip_environment(settings.pack_install),
        )
        if report.error:
            failed.append(
                FailedEnvironment(
                    pack_ref=spec.ref,
                    pack_path=str(spec.path),
                    runtime=target.runtime_name,
                    error=report.error,
                )
            )
            continue
        count = await asyncio.to_thread(_package_count, target.final_dir, node)
        installed = (spec.path / ("package.json" if node else "requirements.txt")).is_file()
        if node:
            counts[1] += 1
            result["nodejs"] = {
                "node_modules_path": str(target.final_dir / "node_modules"),
                "dependencies_installed": installed,
                "package_count": count,
                "nodejs_version": target.version or body.nodejs_version,
            }
        else:
            counts[0] += 1
            result["python"] = {
                "virtualenv_path": str(target.final_dir),
                "requirements_installed": installed,
                "package_count": count,
                "python_version": target.version or body.python_version,
            }
    return result, counts[0], counts[1]


@router.post("/packs/build-envs", dependencies=[require("packs", "manage")])
async def build_envs(body: BuildPackEnvs, platform: PlatformDep) -> Data[BuildPackEnvsResponse]:
    """Build the Python/Node.js environments of pack directories where workers look for them
    (``{runtime_envs_dir}/{pack}/{runtime}[-{version}]``, docs/packs.md)."""
    started = time.monotonic()
    built: list[BuiltEnvironments] = []
    failed: list[FailedEnvironment] = []
    python_built = node_built = 0
    failed_packs = 0
    for raw in body.pack_paths:
        pack_started = time.monotonic()
        try:
            parsed = await asyncio.to_thread(_parse, raw, platform.settings.packs_base_dir)
        except (AttuneError, OSError) as exc:
            message = getattr(exc, "message", None) or str(exc)
            failed.append(FailedEnvironment(pack_ref="unknown", pack_path=raw, runtime="none", error=message))
            failed_packs += 1
            continue
        before = len(failed)
        result, python_count, node_count = await _build_pack(platform, parsed, body, failed)
        python_built += python_count
        node_built += node_count
        if len(failed) > before:
            failed_packs += 1
            continue
        built.append(
            BuiltEnvironments(
                pack_ref=parsed.pack.ref,
                pack_path=str(parsed.pack.path),
                environments=result,
                duration_ms=int((time.monotonic() - pack_started) * 1000),
            )
        )
    summary = BuildSummary(
        total_packs=len(body.pack_paths),
        success_count=len(built),
        failure_count=failed_packs,
        python_envs_built=python_built,
        nodejs_envs_built=node_built,
        total_duration_ms=int((time.monotonic() - started) * 1000),
    )
    return Data(
        data=BuildPackEnvsResponse(built_environments=built, failed_environments=failed, summary=summary)
    )
