"""``attune pack``: packs on the server, plus local tests, checksums and index files (§6.3)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
import yaml

from attune.cli import pack_index
from attune.cli.client import LONG_TIMEOUT
from attune.cli.common import bool_option, complete_packs, confirm, filter_name, put_update
from attune.cli.errors import CliError
from attune.cli.output import Printer
from attune.cli.pack_testing import run_pack_tests
from attune.cli.state import State, current

app = typer.Typer(
    help="Packs: install, register, inspect and test bundles of automation.", no_args_is_help=True
)

RefArg = Annotated[str, typer.Argument(metavar="REF", help="Pack ref.", autocompletion=complete_packs)]
ForceOpt = Annotated[bool, typer.Option("--force", "-f", help="Replace a pack with the same ref.")]
SkipTestsOpt = Annotated[bool, typer.Option("--skip-tests", help="Do not run the pack's tests.")]


@app.command("list")
def list_packs(
    name: Annotated[str | None, typer.Option("--name", "-n", help="Substring of the ref.")] = None,
) -> None:
    """List installed packs."""
    state = current()
    rows = filter_name(state.client.get_all("/packs"), name)
    out = state.printer

    def human() -> None:
        if not rows:
            out.info("No packs found")
            return
        out.table(
            ["ID", "Ref", "Version", "Standard", "Description"],
            [
                [r["id"], r["ref"], r["version"], r.get("is_standard", False), r.get("description") or ""]
                for r in rows
            ],
        )

    out.emit(rows, human)


@app.command()
def show(ref: RefArg) -> None:
    """Show a pack and how many components it has."""
    state = current()
    client = state.client
    data = client.get(f"/packs/{ref}")
    counts = {
        kind: len(client.get_all(f"/packs/{ref}/{kind}"))
        for kind in ("actions", "triggers", "rules", "sensors")
    }
    out = state.printer

    def human() -> None:
        out.section(f"Pack: {data.get('label') or data['ref']}")
        out.key_values(
            [
                ("ID", data["id"]),
                ("Ref", data["ref"]),
                ("Label", data.get("label")),
                ("Version", data.get("version")),
                ("Description", data.get("description") or "None"),
                ("Standard", data.get("is_standard", False)),
                *((kind.capitalize(), n) for kind, n in counts.items()),
                ("Created", data.get("created")),
                ("Updated", data.get("updated")),
            ]
        )
        if data.get("tags"):
            out.section("Tags")
            for tag in data["tags"]:
                out.line(f"  • {tag}")

    out.emit({**data, "counts": counts}, human)


def _report(out: Printer, pack: dict[str, Any], verb: str, tests_skipped: bool | None = None) -> None:
    out.success(f"Pack '{pack['ref']}' {verb} successfully")
    out.info(f"Version: {pack.get('version')}")
    out.info(f"ID: {pack.get('id')}")
    if tests_skipped:
        out.warn("Tests were skipped")


def _upload(state: State, directory_or_file: Path, *, force: bool, skip_tests: bool) -> dict[str, Any]:
    """Send a local pack to the server (``POST /packs/upload``): works for remote servers too."""
    if directory_or_file.is_dir():
        payload = pack_index.tar_directory(directory_or_file)
        filename = f"{directory_or_file.resolve().name}.tar.gz"
    else:
        payload = directory_or_file.read_bytes()
        filename = directory_or_file.name
    data: dict[str, Any] = state.client.call(
        "POST",
        "/packs/upload",
        files={"file": (filename, payload, "application/gzip")},
        data={"force": str(force).lower(), "skip_tests": str(skip_tests).lower()},
        timeout=LONG_TIMEOUT,
    )
    return data


@app.command()
def register(
    path: Annotated[
        str, typer.Argument(metavar="PATH", help="Pack directory (on this machine, or see --on-server).")
    ],
    force: ForceOpt = False,
    skip_tests: SkipTestsOpt = False,
    on_server: Annotated[
        bool, typer.Option("--on-server", help="PATH is a directory on the server: register it in place.")
    ] = False,
) -> None:
    """Register a pack directory.

    A directory on this machine is uploaded (so this works against remote servers too); with
    --on-server the server registers its own directory in place.
    """
    state = current()
    out = state.printer
    local = Path(path)
    if out.human:
        out.info(f"Registering pack from: {path}")
    if not on_server and local.is_dir():
        pack_index.read_pack_yaml(local)
        data = _upload(state, local, force=force, skip_tests=skip_tests)
    elif not on_server:
        raise CliError(f"Pack directory does not exist: {path} (use --on-server for a path on the server)")
    else:
        body = {"path": path, "force": force, "skip_tests": skip_tests}
        data = state.client.post("/packs/register", body, timeout=LONG_TIMEOUT)
    pack = data.get("pack", data) if isinstance(data, dict) else data
    out.emit(data, lambda: _report(out, pack, "registered", skip_tests))


def source_type(source: str, ref_spec: str | None, no_registry: bool) -> str:
    """The kind of source shown to the user (cli.md §6.3.1); the server decides for real."""
    http = source.startswith(("http://", "https://"))
    path = Path(source)
    if no_registry:
        if http and source.endswith(".git"):
            return "git repository"
        if http and pack_index.is_archive(path):
            return "archive URL"
        if http:
            return "URL"
        if path.is_file():
            return "local archive"
        if path.is_dir():
            return "local directory"
        return "unknown source"
    if (http and source.endswith(".git")) or ref_spec:
        return "git repository"
    if http:
        return "archive URL"
    if path.is_file():
        return "local archive"
    if path.is_dir():
        return "local directory"
    if source.startswith("git@") or "git://" in source:
        return "git repository"
    return "registry reference"


@app.command()
def install(
    source: Annotated[
        str, typer.Argument(help="Local directory or .tar.gz, git URL, archive URL or registry ref.")
    ],
    ref_spec: Annotated[
        str | None, typer.Option("--ref-spec", "-r", help="Git branch, tag or commit.")
    ] = None,
    force: ForceOpt = False,
    skip_tests: SkipTestsOpt = False,
    skip_deps: Annotated[bool, typer.Option("--skip-deps", help="Do not check pack dependencies.")] = False,
    no_registry: Annotated[
        bool, typer.Option("--no-registry", help="Never treat SOURCE as a registry ref.")
    ] = False,
) -> None:
    """Install a pack from a source (local paths are uploaded to the server)."""
    state = current()
    out = state.printer
    kind = source_type(source, ref_spec, no_registry)
    if out.human:
        out.info(f"Installing pack from: {source} ({kind})")
        out.info("Starting installation...")
        if skip_deps:
            out.info("⚠ Dependency validation will be skipped")
    local = Path(source)
    data: dict[str, Any]
    if kind in ("local directory", "local archive"):
        pack = _upload(state, local, force=True, skip_tests=skip_tests or skip_deps)
        data = {"pack": pack, "test_result": None, "tests_skipped": skip_tests or skip_deps}
    else:
        body = {
            "source": source,
            "ref_spec": ref_spec,
            "force": force,
            "skip_tests": skip_tests or skip_deps,
            "skip_deps": skip_deps,
        }
        data = state.client.post("/packs/install", body, timeout=LONG_TIMEOUT)

    def human() -> None:
        _report(out, data["pack"], "installed", data.get("tests_skipped"))
        result = data.get("test_result")
        if isinstance(result, dict):
            if result.get("status") == "passed":
                out.success("All tests passed")
            else:
                out.fail("Some tests failed")
            out.info(f"Tests: {result.get('passed')}/{result.get('totalTests')} passed")

    out.emit(data, human)


@app.command()
def uninstall(
    ref: RefArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Remove a pack and everything it registered."""
    state = current()
    if not confirm(state, f"Are you sure you want to uninstall pack '{ref}'?", yes):
        state.printer.info("Uninstall cancelled")
        return
    state.client.delete(f"/packs/{ref}")
    out = state.printer
    out.emit(
        {"message": "Pack uninstalled successfully"},
        lambda: out.success(f"Pack '{ref}' uninstalled successfully"),
    )


@app.command()
def update(
    ref: RefArg,
    label: Annotated[str | None, typer.Option("--label")] = None,
    description: Annotated[str | None, typer.Option("--description")] = None,
    version: Annotated[str | None, typer.Option("--version")] = None,
    enabled: Annotated[str | None, typer.Option("--enabled", help="true or false.")] = None,
) -> None:
    """Change a pack's label, description or version."""
    put_update(
        "packs",
        "Pack",
        ref,
        {
            "label": label,
            "description": description,
            "version": version,
            "enabled": bool_option(enabled, "--enabled"),
        },
    )


# -- local tests -------------------------------------------------------------------------------


@app.command()
def test(
    pack: Annotated[str, typer.Argument(help="Pack directory, or the name of one under ./packs.")],
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show every test case.")] = False,
    detailed: Annotated[bool, typer.Option("--detailed", "-d", help="Show every suite.")] = False,
) -> None:
    """Run a pack's tests on this machine (no server involved); exits 1 when tests fail."""
    state = current()
    out = state.printer
    directory = Path(pack)
    if directory.is_dir():
        if out.human:
            out.info(f"Testing pack from local directory: {directory}")
    else:
        directory = Path("packs") / pack
        if not directory.is_dir():
            raise CliError(f"Pack '{pack}' not found. Provide a pack name or path to a pack directory.")
    manifest = (
        yaml.safe_load((directory / "pack.yaml").read_text(encoding="utf-8"))
        if (directory / "pack.yaml").is_file()
        else None
    )
    if not isinstance(manifest, dict):
        raise CliError(f"pack.yaml not found in: {directory}")
    if not manifest.get("ref"):
        raise CliError("'ref' field not found in pack.yaml")
    testing = manifest.get("testing")
    if not isinstance(testing, dict):
        raise CliError("No 'testing' configuration found in pack.yaml")
    if not testing.get("enabled", False):
        out.warn("Testing is disabled for this pack")
        return
    result = run_pack_tests(directory, manifest)
    if not out.human:
        out.data(result)
    else:
        _print_tests(out, result, verbose=verbose, detailed=detailed)
    if result["failed"]:
        raise typer.Exit(1)


def _print_tests(out: Printer, result: dict[str, Any], *, verbose: bool, detailed: bool) -> None:
    out.line(f"🧪 Testing Pack: {result['packRef']} v{result['packVersion']}")
    out.section("Test Results:")
    out.key_values(
        [
            ("Total Tests", result["totalTests"]),
            ("✓ Passed", result["passed"]),
            ("✗ Failed", result["failed"]),
            ("○ Skipped", result["skipped"]),
            ("Pass Rate", f"{result['passRate'] * 100:.1f}%"),
            ("Duration", f"{result['durationMs']} ms"),
        ]
    )
    if verbose or detailed:
        for suite in result["testSuites"]:
            out.line(
                f"  {suite['name']} ({suite['runnerType']}): {suite['passed']}/{suite['total']} passed, "
                f"{suite['failed']} failed, {suite['skipped']} skipped, {suite['durationMs']} ms"
            )
            if not verbose:
                continue
            for case in suite["testCases"]:
                mark = {"passed": "✓", "failed": "✗", "skipped": "○"}.get(case["status"], "⚠")
                out.line(f"    {mark} {case['name']} ({case['durationMs']}ms)")
                if case.get("errorMessage"):
                    out.line(f"      Error: {case['errorMessage']}")
                if detailed:
                    for stream in ("stdout", "stderr"):
                        lines = (case.get(stream) or "").splitlines()[:10]
                        for text in lines:
                            out.line(f"      {stream}: {text}")
    if result["failed"]:
        out.fail(f"❌ Tests failed: {result['failed']}/{result['totalTests']}")
    else:
        out.success(f"✅ All tests passed: {result['passed']}/{result['totalTests']}")


# -- registries (read the server configuration file, cli.md §6.3.3) ---------------------------------


def _registry_settings() -> Any:
    from attune.settings import load_settings

    try:
        return load_settings(None, ensure_secrets=False).pack_registry
    except Exception as exc:  # any configuration problem is reported the same way
        raise CliError(f"Cannot read the Attune server configuration: {exc}") from exc


@app.command()
def registries() -> None:
    """List the pack registry indices of the server configuration (./config.yaml or $ATTUNE_CONFIG)."""
    state = current()
    out = state.printer
    settings = _registry_settings()
    if not settings.enabled:
        out.warn("Pack registry system is disabled in configuration")
        return
    indices = sorted(settings.indices, key=lambda i: i.priority)
    rows = [i.model_dump() for i in indices]

    def human() -> None:
        if not rows:
            out.warn("No registries configured")
            return
        out.table(
            ["Priority", "Name", "URL", "Status"],
            [
                [r["priority"], r.get("name") or "-", r["url"], "✓ Enabled" if r["enabled"] else "✗ Disabled"]
                for r in rows
            ],
        )

    out.emit(rows, human)


def _fetch_index(url: str, headers: dict[str, str], timeout: float) -> dict[str, Any]:
    if url.startswith("file://"):
        return pack_index.load_index(Path(url[len("file://") :]))
    response = httpx.get(url, headers=headers, timeout=timeout, follow_redirects=True)
    response.raise_for_status()
    data: dict[str, Any] = response.json()
    return data


@app.command()
def search(
    keyword: str,
    registry: Annotated[
        str | None, typer.Option("--registry", "-r", help="Only the registry with this name.")
    ] = None,
) -> None:
    """Search the configured registries for packs matching KEYWORD."""
    state = current()
    out = state.printer
    settings = _registry_settings()
    if not settings.enabled:
        raise CliError("Pack registry system is disabled in configuration")
    indices = [i for i in sorted(settings.indices, key=lambda i: i.priority) if i.enabled]
    if registry:
        indices = [i for i in indices if i.name == registry]
    if out.human:
        where = f"registry '{registry}'" if registry else "all registries"
        out.info(f"Searching {where} for '{keyword}'...")
    needle = keyword.lower()
    hits: list[dict[str, Any]] = []
    for index in indices:
        try:
            document = _fetch_index(index.url, index.headers, settings.timeout)
        except (httpx.HTTPError, ValueError, CliError) as exc:
            if registry:
                raise CliError(f"Failed to fetch registry: {exc}") from exc
            out.warn(f"Skipping registry {index.name or index.url}: {exc}")
            continue
        for entry in document.get("packs") or []:
            haystack = [
                entry.get("ref"),
                entry.get("label"),
                entry.get("description"),
                *(entry.get("keywords") or []),
            ]
            if any(needle in str(text).lower() for text in haystack if text):
                hits.append(
                    {
                        **{
                            k: entry.get(k)
                            for k in ("ref", "label", "version", "description", "author", "keywords")
                        },
                        "registry": index.name or index.url,
                    }
                )
    if not hits:
        out.warn(f"No packs found matching '{keyword}'")
        if not out.human:
            out.data([])
        return

    def human() -> None:
        out.table(
            ["Ref", "Version", "Description", "Author"],
            [[h["ref"], h["version"], h.get("description") or "", h.get("author") or ""] for h in hits],
        )
        out.success(f"Found {len(hits)} pack(s)")

    out.emit(hits, human)


# -- checksums and index files (local, cli.md §6.3.4) -----------------------------------------------


@app.command()
def checksum(
    path: Path,
    stub: Annotated[
        bool, typer.Option("--json", help="Print an install-source stub for an index entry.")
    ] = False,
) -> None:
    """Checksum of a pack directory (packs.md §14.4) or of an archive file."""
    state = current()
    out = state.printer
    if not path.exists():
        out.fail(f"Path does not exist: {path}")
        raise typer.Exit(1)
    if out.human and not stub:
        out.info(f"Calculating checksum for '{path}'...")
    digest = pack_index.checksum(path)
    formatted = f"sha256:{digest}"
    if stub:
        if path.is_file() and pack_index.is_archive(path):
            source: dict[str, Any] = {
                "type": "archive",
                "url": "https://example.com/path/to/pack.tar.gz",
                "checksum": formatted,
            }
        else:
            source = {
                "type": "git",
                "url": "https://github.com/your-org/pack.git",
                "ref": "v1.0.0",
                "checksum": formatted,
            }
        out.pretty_json(source) if out.human else out.data(source)
        if out.human:
            out.info("Edit the url (and ref) before adding this source to an index")
        return

    def human() -> None:
        out.line(f"Checksum for: {path}")
        out.line("Algorithm: SHA256")
        out.line(f"Hash: {digest}")
        out.line(f"Formatted: {formatted}")
        out.success("Checksum calculated successfully")

    out.emit({"path": str(path), "checksum": formatted}, human)


GitUrlOpt = Annotated[str | None, typer.Option("--git-url", "-g", help="Git repository URL.")]
GitRefOpt = Annotated[str | None, typer.Option("--git-ref", "-r", help="Git ref (default v<version>).")]
ArchiveUrlOpt = Annotated[str | None, typer.Option("--archive-url", "-a", help="Archive URL.")]


@app.command("index-entry")
def index_entry(
    path: Path,
    git_url: GitUrlOpt = None,
    git_ref: GitRefOpt = None,
    archive_url: ArchiveUrlOpt = None,
    fmt: Annotated[str | None, typer.Option("--format", "-f", hidden=True)] = None,
) -> None:
    """Print a registry index entry for a pack directory."""
    state = current()
    out = state.printer
    entry, used_template = pack_index.index_entry(
        path, git_url=git_url, git_ref=git_ref, archive_url=archive_url
    )
    if used_template:
        out.warn("No git-url or archive-url provided. Generating templates...")
    if out.human:
        out.pretty_json(entry)
        out.success("Index entry generated successfully")
    else:
        out.data(entry)


@app.command("index-update")
def index_update(
    path: Path,
    index: Annotated[Path, typer.Option("--index", "-i", help="The index JSON file to change.")],
    git_url: GitUrlOpt = None,
    git_ref: GitRefOpt = None,
    archive_url: ArchiveUrlOpt = None,
    replace: Annotated[bool, typer.Option("--update", "-u", help="Replace an existing entry.")] = False,
) -> None:
    """Add a pack directory's entry to an index file, or replace it with --update."""
    state = current()
    out = state.printer
    document = pack_index.load_index(index)
    entry, _ = pack_index.index_entry(
        path, git_url=git_url, git_ref=git_ref, archive_url=archive_url, template=False
    )
    packs: list[dict[str, Any]] = document["packs"]
    position = next(
        (i for i, p in enumerate(packs) if isinstance(p, dict) and p.get("ref") == entry["ref"]), None
    )
    if position is not None and not replace:
        raise CliError(f"Pack '{entry['ref']}' already exists in index. Use --update to replace it.")
    if position is None:
        packs.append(entry)
        action = "added"
    else:
        packs[position] = entry
        action = "updated"
    pack_index.write_json(index, document)
    digest = f"sha256:{pack_index.directory_checksum(path)}"

    def human() -> None:
        out.success(f"Index updated successfully: {index}")
        out.line(f"  Pack: {entry['ref']} v{entry['version']} ({action})")
        out.line(f"  Checksum: {digest}")

    out.emit(
        {
            "success": True,
            "index_file": str(index),
            "pack_ref": entry["ref"],
            "version": entry["version"],
            "checksum": digest,
            "action": action,
        },
        human,
    )


@app.command("index-merge")
def index_merge(
    inputs: Annotated[list[Path], typer.Argument(metavar="INPUT...", help="Index files to merge.")],
    output: Annotated[Path, typer.Option("--file", "-o", help="Where to write the merged index.")],
    force: Annotated[bool, typer.Option("--force", "-f", help="Overwrite the output file.")] = False,
) -> None:
    """Merge index files; for a ref listed twice the higher version wins."""
    state = current()
    out = state.printer
    if output.exists() and not force:
        raise CliError(f"Output file already exists: {output}. Use --force to overwrite.")
    loaded: list[dict[str, Any]] = []
    for file in inputs:
        if not file.is_file():
            out.warn(f"Skipping missing file: {file}")
            continue
        loaded.append(pack_index.load_index(file))
    packs, total, duplicates = pack_index.merge_indices(loaded)
    pack_index.write_json(
        output, {"version": "1.0", "generated_at": pack_index.now_rfc3339(), "packs": packs}
    )
    summary = {
        "success": True,
        "output_file": str(output),
        "sources_count": len(loaded),
        "total_loaded": total,
        "unique_packs": len(packs),
        "duplicates_resolved": duplicates,
    }

    def human() -> None:
        out.success(f"Merged {len(loaded)} index file(s) into {output}")
        out.line(f"  Total loaded: {total}")
        out.line(f"  Unique packs: {len(packs)}")
        out.line(f"  Duplicates resolved: {duplicates}")

    out.emit(summary, human)
