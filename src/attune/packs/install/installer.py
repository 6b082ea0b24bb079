"""Install, upgrade and reinstall packs atomically (docs/packs.md, intended; docs/packs.md).

1. **Stage**: fetch the source into a scratch directory; verify the registry checksum; parse it.
2. **Resolve**: every dependency must be installed, part of this install, or fetched from a
   registry (installed first); conflicts are reported together.
3. **Build** each pack's environments next to the live ones, and **test** the staged pack.
4. **Swap and register**: pack directories and environments go live by renames, then every pack
   is registered in one database transaction. Any failure puts the previous directories and
   environments back; the database transaction never committed, so nothing changed.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attune.db import models
from attune.db.repos import pack_environments, packs
from attune.db.repos.runtimes import resolve as resolve_runtime
from attune.db.types import utcnow
from attune.domain import refs
from attune.errors import BadRequest, Conflict, NotFound
from attune.packs import archive
from attune.packs.install import checksum as checksums
from attune.packs.install import envs, index, sources, staging, versions
from attune.packs.install.envs import BuiltEnv
from attune.packs.install.progress import Progress, ProgressEvent, silent
from attune.packs.install.resolve import Candidate, resolve
from attune.packs.install.sources import Fetched, FetchError
from attune.packs.install.tests import TestOutcome, run_and_judge
from attune.packs.manifest import ParsedPack
from attune.packs.parser import PackFormatError, parse_pack_dir
from attune.packs.register import register_parsed
from attune.platform import Platform

log = logging.getLogger(__name__)


@dataclass
class InstallRequest:
    """What to install and how. ``kind`` forces the source kind (uploads are ``local_archive``)."""

    source: str
    ref_spec: str | None = None
    skip_tests: bool = False
    skip_deps: bool = False
    installed_by: int | None = None
    #: An installed pack with the same ref is replaced (False: 409 instead).
    replace: bool = True
    #: Upgrades: the source must hold this pack, which must be installed.
    expect_ref: str | None = None
    allow_downgrade: bool = True
    kind: str | None = None
    #: Recorded as ``source_url`` instead of the source (an uploaded file's name).
    source_label: str | None = None
    #: Refuse (422) a pack with files registration would skip, instead of warning (docs/packs.md).
    fail_on_error: bool = False


@dataclass
class InstallOutcome:
    pack_id: int
    ref: str
    version: str
    previous_version: str | None
    test_result: dict[str, Any] | None
    tests_skipped: bool
    warnings: list[str] = field(default_factory=list)
    #: ``ref version`` of each dependency installed first, in install order.
    dependencies_installed: list[str] = field(default_factory=list)


@dataclass
class Staged:
    """A fetched and parsed pack, and what the install did with it so far."""

    fetched: Fetched
    parsed: ParsedPack
    source_type: str
    source_url: str | None
    source_ref: str | None
    checksum: str
    checksum_verified: bool
    built: list[BuiltEnv] = field(default_factory=list)
    tests: TestOutcome | None = None
    incoming: Path | None = None
    placed: archive.PlacedPack | None = None

    @property
    def ref(self) -> str:
        return self.parsed.pack.ref

    @property
    def version(self) -> str:
        return self.parsed.pack.version

    def candidate(self) -> Candidate[Staged]:
        spec = self.parsed.pack
        return Candidate(spec.ref, spec.version, list(spec.dependencies), spec.python, spec.nodejs, self)


class _Install:
    """One install run: stages packs below ``workdir`` and commits them together."""

    def __init__(
        self, platform: Platform, request: InstallRequest, progress: Progress, workdir: Path
    ) -> None:
        self.platform = platform
        self.settings = platform.settings
        self.request = request
        self.progress = progress
        self.workdir = workdir
        self._count = 0

    def _slot(self) -> Path:
        self._count += 1
        path = self.workdir / str(self._count)
        path.mkdir()
        return path

    # -- staging ------------------------------------------------------------------------------

    async def stage_source(self) -> Staged:
        request = self.request
        kind = request.kind or sources.classify(request.source, request.ref_spec)
        if kind == "registry":
            name, _, version = request.source.partition("@")
            if not refs.is_pack_ref(name.strip()):
                raise BadRequest(
                    f"Pack source '{request.source}' is neither an existing path, a URL nor a registry ref"
                )
            try:
                entry = await index.find(self.settings.pack_registry, name.strip(), version.strip() or None)
            except NotFound as exc:
                raise BadRequest(exc.message) from exc
            return await self.stage_entry(entry)
        fetched = await sources.fetch(
            kind,
            request.source,
            request.ref_spec,
            self._slot(),
            settings=self.settings.pack_install,
            progress=self.progress,
        )
        url = request.source_label or fetched.source_url
        return await self._finish(fetched, kind, url, fetched.source_ref, None)

    async def stage_entry(self, entry: index.IndexEntry) -> Staged:
        """Fetch a registry entry from its first working source and verify its checksum."""
        registry = self.settings.pack_registry
        errors: list[str] = []
        for source in entry.sources:
            try:
                index.check_source_url(source.url, registry)
                ref_spec = source.ref if source.type == "git" else None
                kind = "git" if source.type == "git" else "archive"
                fetched = await sources.fetch(
                    kind,
                    source.url,
                    ref_spec,
                    self._slot(),
                    settings=self.settings.pack_install,
                    progress=self.progress,
                    pack=entry.ref,
                    headers=entry.headers_for(source.url),
                )
            except (FetchError, index.RegistryError) as exc:
                errors.append(exc.message)
                continue
            return await self._finish(
                fetched, "registry", source.url, ref_spec or entry.version, (entry, source)
            )
        raise FetchError(
            f"Cannot fetch pack '{entry.ref}' from registry '{entry.registry}': " + "; ".join(errors)
        )

    async def _finish(
        self,
        fetched: Fetched,
        source_type: str,
        source_url: str | None,
        source_ref: str | None,
        origin: tuple[index.IndexEntry, index.InstallSource] | None,
    ) -> Staged:
        parsed = await asyncio.to_thread(parse_pack_dir, fetched.root)
        spec = parsed.pack
        self.progress(ProgressEvent("verify", f"Fetched {spec.ref} {spec.version}", spec.ref))
        verified = False
        if origin is not None:
            entry, source = origin
            if spec.ref != entry.ref or versions.compare(spec.version, entry.version) != 0:
                raise BadRequest(
                    f"Registry '{entry.registry}' lists {entry.ref} {entry.version}, but {source.url} "
                    f"holds {spec.ref} {spec.version}"
                )
            verified = await self._verify(fetched, entry, source)
        digest = await asyncio.to_thread(checksums.directory_checksum, fetched.root)
        return Staged(fetched, parsed, source_type, source_url, source_ref, digest, verified)

    async def _verify(self, fetched: Fetched, entry: index.IndexEntry, source: index.InstallSource) -> bool:
        if not self.settings.pack_registry.verify_checksums:
            return False
        if not source.checksum:
            raise BadRequest(f"Registry '{entry.registry}' gives no checksum for {entry.ref} ({source.url})")
        self.progress(ProgressEvent("verify", "Verifying the checksum", entry.ref))
        ok, actual = await asyncio.to_thread(
            checksums.matches, source.checksum, fetched.root, fetched.archive
        )
        if not ok:
            raise BadRequest(
                f"Checksum mismatch for pack '{entry.ref}' from {source.url}: "
                f"the registry expects {source.checksum.lower()}, the download has {actual}"
            )
        return True

    # -- checks -------------------------------------------------------------------------------

    async def check_target(self, root: Staged) -> str | None:
        """Replace/upgrade rules for the requested pack; returns the installed version, if any."""
        request = self.request
        async with self.platform.db.session() as session:
            current = await packs.by_ref(session, root.ref)
        previous = current.version if current is not None else None
        if request.expect_ref is not None:
            if root.ref != request.expect_ref:
                raise BadRequest(f"The source holds pack '{root.ref}', not '{request.expect_ref}'")
            if (
                previous is not None
                and not request.allow_downgrade
                and versions.compare(root.version, previous) < 0
            ):
                raise BadRequest(
                    f"Pack '{root.ref}' {root.version} is older than the installed {previous}; "
                    "pass allow_downgrade to go back"
                )
        if not request.replace:
            target = self.settings.install_dir / root.ref
            if current is not None or await asyncio.to_thread(target.exists):
                raise Conflict(f"Pack '{root.ref}' already exists. Use force=true to reinstall.")
        return previous

    async def dependencies(self, root: Staged) -> list[Staged]:
        self.progress(ProgressEvent("dependencies", "Checking dependencies", root.ref))
        async with self.platform.db.session() as session:
            installed = await packs.installed_versions(session)
            dependents = {ref: await packs.dependents(session, ref) for ref in installed}
        registry = self.settings.pack_registry
        find = None
        if registry.enabled and any(i.enabled for i in registry.indices):

            async def find_latest(ref: str) -> index.IndexEntry:
                return await index.find(registry, ref)

            find = find_latest

        async def stage(entry: index.IndexEntry) -> Candidate[Staged]:
            self.progress(
                ProgressEvent("dependencies", f"Fetching dependency {entry.ref} {entry.version}", entry.ref)
            )
            return (await self.stage_entry(entry)).candidate()

        plan = await resolve(
            root.candidate(), installed=installed, dependents=dependents, find=find, stage=stage
        )
        return [candidate.payload for candidate in plan.install_first]

    # -- environments and tests ----------------------------------------------------------------

    async def prepare(self, staged: Staged) -> None:
        """Build the pack's environments and run its tests (unless skipped)."""
        if self.request.fail_on_error and staged.parsed.skipped:
            # Refused before anything is built; what only registration finds is refused there.
            raise PackFormatError(f"{staged.ref}: " + "; ".join(staged.parsed.skipped))
        root = staged.fetched.root
        async with self.platform.db.session() as session:
            targets = await envs.plan(session, staged.parsed, root, self.settings.envs_dir)
        staged.built = await envs.build(
            targets, root, settings=self.settings.pack_install, progress=self.progress, pack=staged.ref
        )
        if self.request.skip_tests:
            return
        spec = staged.parsed.pack
        if spec.testing and spec.testing.get("enabled") is True:
            self.progress(ProgressEvent("tests", "Running the pack's tests", staged.ref))
        staged.tests = await run_and_judge(
            spec.ref,
            spec.version,
            spec.testing,
            root,
            force=False,
            python=envs.interpreter_of(staged.built, root),
            failure_prefix=f"Installing pack '{spec.ref}' {spec.version} failed",
        )

    # -- going live -----------------------------------------------------------------------------

    def _installation(self, staged: Staged, target: Path) -> dict[str, Any]:
        return {
            "source_type": staged.source_type,
            "source_url": staged.source_url,
            "source_ref": staged.source_ref,
            "checksum": staged.checksum,
            "checksum_verified": staged.checksum_verified,
            "installation_method": "api",
            "installed_at": utcnow(),
            "installed_by": self.request.installed_by,
            "storage_path": str(target),
        }

    async def commit(self, order: list[Staged]) -> dict[str, tuple[models.Pack, list[str]]]:
        """Swap every pack in and register them all in one transaction; undo the swaps on failure."""
        # Installed packs live under the data dir, never in a source checkout (docs/packs.md).
        base = self.settings.install_dir
        results: dict[str, tuple[models.Pack, list[str]]] = {}
        try:
            for staged in order:
                staged.incoming = await asyncio.to_thread(
                    staging.bring_in, staged.fetched.root, base, staged.ref
                )
            for staged in order:
                self.progress(
                    ProgressEvent("register", f"Activating {staged.ref} {staged.version}", staged.ref)
                )
                assert staged.incoming is not None
                staged.placed = await asyncio.to_thread(staging.swap, staged.incoming, base / staged.ref)
                staged.incoming = None
                await envs.swap_in(staged.built)
            async with self.platform.db.transaction() as session:
                for staged in order:
                    result = await register_parsed(
                        session,
                        staged.parsed,
                        force=True,
                        installation=self._installation(staged, base / staged.ref),
                        tests=staged.tests,
                        fail_on_error=self.request.fail_on_error,
                    )
                    for entry in staged.built:
                        runtime_row = await resolve_runtime(session, entry.target.runtime_ref)
                        if runtime_row is not None:
                            values = envs.record_values(entry, runtime_row)
                            await pack_environments.save_ready(session, result.pack.id, staged.ref, values)
                    results[staged.ref] = (result.pack, result.warnings)
        except BaseException:
            for staged in reversed(order):
                await envs.swap_back(staged.built)
                if staged.placed is not None:
                    await asyncio.to_thread(staged.placed.rollback)
                    staged.placed = None
                await asyncio.to_thread(staging.discard, staged.incoming)
            raise
        for staged in order:
            if staged.placed is not None:
                await asyncio.to_thread(staged.placed.commit)
            await envs.commit(staged.built)
        return results


async def install(platform: Platform, request: InstallRequest, progress: Progress = silent) -> InstallOutcome:
    """Install (or upgrade) the pack ``request.source`` names; see the module docstring.

    Raises :class:`~attune.errors.AttuneError` subclasses with a clear message; when it raises,
    the installed packs, their environments and the database are as they were.
    """
    settings = platform.settings
    async with staging.install_lock(settings), staging.workspace(settings) as workdir:
        job = _Install(platform, request, progress, workdir)
        root = await job.stage_source()
        previous = await job.check_target(root)
        order = [root] if request.skip_deps else [*await job.dependencies(root), root]
        try:
            for staged in order:
                await job.prepare(staged)
            results = await job.commit(order)
        except BaseException:
            for staged in order:
                await envs.discard(staged.built)
            raise
    pack = results[root.ref][0]
    for staged in order:
        log.info("installed pack %s %s from %s", staged.ref, staged.version, staged.source_url)
        for warning in results[staged.ref][1]:
            log.warning("pack %s: %s", staged.ref, warning)
    return InstallOutcome(
        pack_id=pack.id,
        ref=root.ref,
        version=root.version,
        previous_version=previous,
        test_result=root.tests.result if root.tests else None,
        tests_skipped=request.skip_tests,
        warnings=[w for staged in order for w in results[staged.ref][1]],
        dependencies_installed=[f"{s.ref} {s.version}" for s in order[:-1]],
    )


async def download(platform: Platform, source: str, ref_spec: str | None, workdir: Path) -> Staged:
    """Fetch, verify and parse one source below ``workdir`` without installing it."""
    job = _Install(platform, InstallRequest(source=source, ref_spec=ref_spec), silent, workdir)
    return await job.stage_source()


def upgrade_request(
    pack: models.Pack,
    *,
    source: str | None,
    version: str | None,
    ref_spec: str | None,
) -> tuple[str, str | None, str | None]:
    """(source, ref_spec, kind) to upgrade an installed pack from where it came from.

    A registry pack is looked up again (``version`` or the latest); a git pack is cloned again
    (``ref_spec``, else ``v{version}`` when a version is given, else the default branch); an
    archive or directory is fetched again from the recorded place. Packs without a recorded
    source are looked up in the registries.
    """
    if source:
        return source, ref_spec, None
    recorded = pack.source_type
    if recorded == "git" and pack.source_url:
        wanted = ref_spec or (f"v{version}" if version else None)
        return pack.source_url, wanted, "git"
    if recorded in ("local_archive", "local_directory") and pack.source_url:
        if not Path(pack.source_url).is_absolute():  # an upload: only its file name was kept
            raise BadRequest(
                f"Pack '{pack.ref}' was uploaded from {pack.source_url}; upload the new version instead "
                "(attune pack install <directory or archive>)"
            )
    if recorded in ("archive", "local_archive", "local_directory") and pack.source_url:
        if version:
            raise BadRequest(
                f"Pack '{pack.ref}' was installed from {pack.source_url}; "
                f"give a source to upgrade it to {version}"
            )
        return pack.source_url, ref_spec, recorded
    return f"{pack.ref}@{version}" if version else pack.ref, None, "registry"
