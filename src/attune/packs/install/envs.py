"""Building a staged pack's environments before it goes live, and swapping them in (docs/packs.md).

A pack's environment lives at ``{runtime_envs_dir}/{pack}/{runtime}[-{version}]`` (docs/packs.md),
where workers look for it. The installer builds a new one under
``{runtime_envs_dir}/{pack}/.builds/{runtime}[-{version}]@{token}`` while the running version keeps
using its own, and makes the well-known path a symbolic link to the build when the pack is swapped
in. A virtualenv is never moved (its scripts hold absolute paths), and the switch is one rename. An
environment whose dependency manifest did not change is reused as it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from attune.db import models
from attune.db.repos import runtimes as runtime_repo
from attune.db.repos.runtimes import resolve as resolve_runtime
from attune.domain.runtimes import canonical_runtime_name
from attune.errors import BadRequest
from attune.packs.install.progress import Progress, ProgressEvent
from attune.packs.manifest import ParsedPack
from attune.settings import PackInstallSettings
from attune.worker import commands, environments, versions

BUILDS = ".builds"
_LOCK_SECONDS = 60


class EnvironmentBuildError(BadRequest):
    """A pack environment could not be built; the message carries the tool's own output (HTTP 400)."""


@dataclass(frozen=True)
class EnvTarget:
    """One environment a pack's actions or sensors will run in."""

    runtime_ref: str
    runtime_name: str
    version: str | None
    config: dict[str, Any]
    final_dir: Path


@dataclass
class BuiltEnv:
    """A target after the build: ``build_dir`` is ``None`` when the live environment was reused."""

    target: EnvTarget
    build_dir: Path | None
    log: str = ""
    _undo: list[Any] = field(default_factory=list)
    _superseded: list[Path] = field(default_factory=list)

    @property
    def env_dir(self) -> Path:
        return self.build_dir or self.target.final_dir


def pip_environment(settings: PackInstallSettings) -> dict[str, str]:
    """pip and npm limits for install-time builds: a missing package fails fast, nothing prompts."""
    return {
        "PIP_RETRIES": str(settings.pip_retries),
        "PIP_DEFAULT_TIMEOUT": f"{settings.pip_timeout:g}",
        "PIP_NO_INPUT": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "npm_config_fetch_retries": str(settings.pip_retries),
        "npm_config_fetch_timeout": str(int(settings.pip_timeout * 1000)),
        "npm_config_yes": "true",
    }


# -- planning ----------------------------------------------------------------------------------


@dataclass
class _Runtime:
    ref: str
    name: str
    config: dict[str, Any]
    versions: list[dict[str, Any]]


async def _runtime(session: AsyncSession, parsed: ParsedPack, runtime_ref: str) -> _Runtime | None:
    """The runtime an action names: one the pack ships (by ref, then name), else a registered one."""
    wanted = canonical_runtime_name(runtime_ref)
    shipped = next((r for r in parsed.runtimes if r.ref == runtime_ref), None) or next(
        (r for r in parsed.runtimes if canonical_runtime_name(r.name) == wanted), None
    )
    if shipped is not None:
        rows = [
            {
                "version": v.version,
                "available": True,
                "is_default": v.is_default,
                "execution_config": v.execution_config,
                "distributions": v.distributions,
            }
            for v in shipped.versions
        ]
        return _Runtime(shipped.ref, shipped.name, dict(shipped.execution_config), rows)
    row = await resolve_runtime(session, runtime_ref)
    if row is None:
        return None
    version_rows = await runtime_repo.versions(session, row.id)
    rows = [
        {
            "version": v.version,
            "available": v.available,
            "is_default": v.is_default,
            "execution_config": dict(v.execution_config or {}),
            "distributions": dict(v.distributions or {}),
        }
        for v in version_rows
    ]
    return _Runtime(row.ref, row.name, dict(row.execution_config or {}), rows)


async def _usable_versions(runtime: _Runtime, cache: dict[tuple[str, str], bool]) -> list[dict[str, Any]]:
    """Version rows that are marked available and whose interpreter answers on this host."""
    usable = []
    for row in runtime.versions:
        if not row["available"]:
            continue
        key = (runtime.ref, str(row["version"]))
        if key not in cache:
            binary = commands.section(row["execution_config"], "interpreter").get("binary")
            cache[key] = await versions.verify_commands(
                row["distributions"], fallback_binary=binary if isinstance(binary, str) else None
            )
        if cache[key]:
            usable.append(row)
    return usable


async def plan(session: AsyncSession, parsed: ParsedPack, pack_dir: Path, envs_dir: Path) -> list[EnvTarget]:
    """The environments the pack's actions and sensors need, chosen as a worker would choose them."""
    wanted: list[tuple[str, str | None]] = [
        (a.runtime_ref, a.runtime_version_constraint) for a in parsed.actions
    ]
    wanted += [(s.runtime_ref, s.runtime_version_constraint) for s in parsed.sensors]
    targets: dict[Path, EnvTarget] = {}
    verified: dict[tuple[str, str], bool] = {}
    for runtime_ref, constraint in wanted:
        if not runtime_ref:
            continue
        runtime = await _runtime(session, parsed, runtime_ref)
        if runtime is None:
            continue
        config, version = runtime.config, None
        if runtime.versions:
            choice = versions.select_version(await _usable_versions(runtime, verified), constraint)
            if choice is not None:
                config, version = choice.execution_config, choice.version
        if not environments.needs_environment(config, pack_dir):
            continue
        final_dir = environments.env_dir_for(envs_dir, parsed.pack.ref, runtime.name.lower(), version)
        targets.setdefault(
            final_dir, EnvTarget(runtime.ref, runtime.name.lower(), version, config, final_dir)
        )
    return list(targets.values())


# -- building ----------------------------------------------------------------------------------


def _reusable(target: EnvTarget, pack_dir: Path) -> bool:
    """The live environment is healthy and was built from the same dependency manifest."""
    live = target.final_dir
    if not live.is_dir():
        return False
    interpreter = commands.env_interpreter(target.config, pack_dir, live)
    if interpreter is not None and not interpreter.exists():
        return False
    manifest = commands.manifest_path(target.config, pack_dir)
    if manifest is None or not manifest.is_file():
        return True
    marker = live / environments.MARKER_NAME
    checksum = hashlib.sha256(manifest.read_bytes()).hexdigest()
    return marker.is_file() and marker.read_text(encoding="utf-8").strip() == checksum


def remove_path(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.exists():
        shutil.rmtree(path, ignore_errors=True)
    lock = path.with_name(path.name + ".lock")
    if lock.is_file():
        lock.unlink(missing_ok=True)


async def build(
    targets: list[EnvTarget],
    pack_dir: Path,
    *,
    settings: PackInstallSettings,
    progress: Progress,
    pack: str,
) -> list[BuiltEnv]:
    """Build every target for the staged ``pack_dir``; raise :class:`EnvironmentBuildError` on failure.

    On failure the builds made so far are removed and the live environments are untouched.
    """
    built: list[BuiltEnv] = []
    try:
        for number, target in enumerate(targets, start=1):
            label = target.runtime_name + (f" {target.version}" if target.version else "")
            if await asyncio.to_thread(_reusable, target, pack_dir):
                progress(
                    ProgressEvent(
                        "environment", f"{label}: unchanged, reused", pack, number, len(targets), "steps"
                    )
                )
                built.append(BuiltEnv(target, None))
                continue
            progress(
                ProgressEvent(
                    "environment",
                    f"Building the {label} environment",
                    pack,
                    number - 1,
                    len(targets),
                    "steps",
                )
            )
            build_dir = target.final_dir.parent / BUILDS / f"{target.final_dir.name}@{uuid.uuid4().hex[:12]}"
            await asyncio.to_thread(build_dir.parent.mkdir, parents=True, exist_ok=True)
            entry = BuiltEnv(target, build_dir)
            built.append(entry)
            report = await environments.ensure_environment(
                pack_dir,
                build_dir,
                target.config,
                timeout=settings.env_build_timeout,
                extra_env=pip_environment(settings),
            )
            entry.log = report.log
            if report.error:
                raise EnvironmentBuildError(
                    f"Building the {label} environment of pack '{pack}' failed: {report.error}"
                )
            progress(
                ProgressEvent(
                    "environment", f"Built the {label} environment", pack, number, len(targets), "steps"
                )
            )
    except BaseException:
        await discard(built)
        raise
    return built


async def discard(built: list[BuiltEnv]) -> None:
    """Remove builds that will not be used."""
    for entry in built:
        if entry.build_dir is not None:
            await asyncio.to_thread(remove_path, entry.build_dir)


# -- swapping ----------------------------------------------------------------------------------


def _swap(entry: BuiltEnv) -> None:
    """Point the live path at the build (one rename); remember how to undo it."""
    assert entry.build_dir is not None
    final = entry.target.final_dir
    final.parent.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex[:12]
    staged_link = final.parent / f".{final.name}.link-{token}"
    os.symlink(os.path.relpath(entry.build_dir, final.parent), staged_link)
    if final.is_symlink():
        previous = os.readlink(final)
        os.replace(staged_link, final)
        entry._undo.append(("link", previous))
        entry._superseded.append((final.parent / previous).resolve())
    elif final.exists():
        backup = final.parent / BUILDS / f"{final.name}@previous-{token}"
        final.rename(backup)
        try:
            os.replace(staged_link, final)
        except OSError:
            backup.rename(final)
            raise
        entry._undo.append(("dir", backup))
        entry._superseded.append(backup)
    else:
        os.replace(staged_link, final)
        entry._undo.append(("none", None))


def _unswap(entry: BuiltEnv) -> None:
    final = entry.target.final_dir
    for kind, value in reversed(entry._undo):
        if kind == "link":
            staged_link = final.parent / f".{final.name}.undo-{uuid.uuid4().hex[:12]}"
            os.symlink(value, staged_link)
            os.replace(staged_link, final)
        elif kind == "dir":
            final.unlink(missing_ok=True)
            value.rename(final)
        else:
            final.unlink(missing_ok=True)
    entry._undo.clear()
    entry._superseded.clear()


async def swap_in(built: list[BuiltEnv]) -> None:
    """Make every new build live; on an error the ones already swapped are put back."""
    done: list[BuiltEnv] = []
    try:
        for entry in built:
            if entry.build_dir is None:
                continue
            async with environments.environment_lock(entry.target.final_dir, _LOCK_SECONDS):
                await asyncio.to_thread(_swap, entry)
            done.append(entry)
    except BaseException:
        await swap_back(done)
        raise


async def swap_back(built: list[BuiltEnv]) -> None:
    """Undo :func:`swap_in` (the registration failed) and remove the new builds."""
    for entry in reversed(built):
        if entry._undo:
            with contextlib.suppress(OSError):
                await asyncio.to_thread(_unswap, entry)
    await discard(built)


def _prune(entry: BuiltEnv) -> None:
    """Drop builds of this environment older than the one just replaced.

    The replaced build is kept until the next install, so processes started from it before the
    swap keep working.
    """
    final = entry.target.final_dir
    keep = {p.resolve() for p in (entry.build_dir, *entry._superseded) if p is not None}
    builds = final.parent / BUILDS
    if not builds.is_dir():
        return
    for candidate in builds.iterdir():
        stem = candidate.name.removesuffix(".lock")
        if not stem.startswith(f"{final.name}@"):
            continue
        if candidate.resolve() in keep or (
            candidate.name.endswith(".lock") and (builds / stem).resolve() in keep
        ):
            continue
        remove_path(candidate)


async def commit(built: list[BuiltEnv]) -> None:
    """The new pack version is registered: forget the undo information and prune old builds."""
    for entry in built:
        if entry.build_dir is None:
            continue
        entry._undo.clear()
        await asyncio.to_thread(_prune, entry)


def interpreter_of(built: list[BuiltEnv], pack_dir: Path) -> str | None:
    """The Python interpreter of the pack's Python environment (for unittest/pytest runners)."""
    for entry in built:
        if entry.target.runtime_name.startswith("python"):
            interpreter = commands.env_interpreter(entry.target.config, pack_dir, entry.env_dir)
            if interpreter is not None and interpreter.exists():
                return str(interpreter)
    return None


def interpreter_of_pack(envs_dir: Path, pack_ref: str) -> str | None:
    """The interpreter of an installed pack's live Python environment, if it has one."""
    root = envs_dir / pack_ref
    if not root.is_dir():
        return None
    for entry in sorted(root.iterdir(), key=lambda p: p.name):
        if entry.name.startswith("python") and not entry.name.endswith(".lock"):
            for name in ("python3", "python"):
                candidate = entry / "bin" / name
                if candidate.exists():
                    return str(candidate)
    return None


def remove_all(envs_dir: Path, pack_ref: str) -> None:
    """Delete every environment of a pack (uninstall); failures are ignored."""
    shutil.rmtree(envs_dir / pack_ref, ignore_errors=True)


def record_values(entry: BuiltEnv, runtime: models.Runtime) -> dict[str, Any]:
    """Column values of the ``pack_environment`` row for a built or reused environment."""
    return {
        "runtime": runtime.id,
        "runtime_ref": runtime.ref,
        "env_path": str(entry.target.final_dir),
        "install_log": entry.log[-16_000:] or None,
        "metadata_": {
            "version": entry.target.version,
            "build": str(entry.build_dir) if entry.build_dir else None,
        },
    }
