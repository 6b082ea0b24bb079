"""``attune pack``: packs on the server, plus local tests, checksums and index files."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from attune.cli import pack_files, pack_index
from attune.cli.client import LONG_TIMEOUT
from attune.cli.common import bool_option, complete_packs, confirm, filter_name, put_update
from attune.cli.errors import CliError
from attune.cli.output import Printer
from attune.cli.pack_progress import run_streamed
from attune.cli.state import State, current
from attune.errors import AttuneError
from attune.packs.install import index as registry_index
from attune.packs.install.tests import run_pack_tests
from attune.packs.install.yamlio import load_yaml

app = typer.Typer(
    help="Packs: install, register, inspect and test bundles of automation.", no_args_is_help=True
)

RefArg = Annotated[str, typer.Argument(metavar="REF", help="Pack ref.", autocompletion=complete_packs)]
ForceOpt = Annotated[bool, typer.Option("--force", "-f", help="Replace a pack with the same ref.")]
SkipTestsOpt = Annotated[bool, typer.Option("--skip-tests", help="Do not run the pack's tests.")]
FailOnErrorOpt = Annotated[
    bool,
    typer.Option(
        "--fail-on-error",
        help="Refuse the pack when a file would be skipped (unsupported StackStorm content, a bad "
        "workflow, an unknown runner) instead of warning; for CI.",
    ),
]


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


def _report(
    out: Printer,
    pack: dict[str, Any],
    verb: str,
    tests_skipped: bool | None = None,
    warnings: list[str] | None = None,
) -> None:
    out.success(f"Pack '{pack['ref']}' {verb} successfully")
    out.info(f"Version: {pack.get('version')}")
    out.info(f"ID: {pack.get('id')}")
    if tests_skipped:
        out.warn("Tests were skipped")
    for warning in warnings or []:
        out.warn(warning)


def _upload(
    state: State,
    directory_or_file: Path,
    *,
    force: bool,
    skip_tests: bool,
    skip_deps: bool = False,
    fail_on_error: bool = False,
) -> dict[str, Any]:
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
        data={
            "force": str(force).lower(),
            "skip_tests": str(skip_tests).lower(),
            "skip_deps": str(skip_deps).lower(),
            "fail_on_error": str(fail_on_error).lower(),
        },
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
    fail_on_error: FailOnErrorOpt = False,
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
        data = _upload(state, local, force=force, skip_tests=skip_tests, fail_on_error=fail_on_error)
    elif not on_server:
        raise CliError(f"Pack directory does not exist: {path} (use --on-server for a path on the server)")
    else:
        body = {"path": path, "force": force, "skip_tests": skip_tests, "fail_on_error": fail_on_error}
        data = state.client.post("/packs/register", body, timeout=LONG_TIMEOUT)
    pack = data.get("pack", data) if isinstance(data, dict) else data
    out.emit(data, lambda: _report(out, pack, "registered", skip_tests, data.get("warnings")))


@app.command()
def upload(
    path: Annotated[Path, typer.Argument(metavar="PATH", help="Pack directory, .tar.gz or .zip here.")],
    force: ForceOpt = False,
    skip_tests: SkipTestsOpt = False,
    skip_deps: Annotated[bool, typer.Option("--skip-deps", help="Do not check pack dependencies.")] = False,
    fail_on_error: FailOnErrorOpt = False,
) -> None:
    """Upload a local pack directory or archive to the server and install it (POST /packs/upload)."""
    state = current()
    out = state.printer
    if not path.exists():
        raise CliError(f"No such pack directory or archive: {path}")
    if path.is_dir():
        pack_index.read_pack_yaml(path)
    data = _upload(
        state, path, force=force, skip_tests=skip_tests, skip_deps=skip_deps, fail_on_error=fail_on_error
    )
    out.emit(data, lambda: _report(out, data, "uploaded", skip_tests, data.get("warnings")))


def source_type(source: str, ref_spec: str | None, no_registry: bool) -> str:
    """The kind of source shown to the user (docs/cli.md); the server decides for real."""
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
    fail_on_error: FailOnErrorOpt = False,
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
        pack = _upload(
            state,
            local,
            force=True,
            skip_tests=skip_tests or skip_deps,
            skip_deps=skip_deps,
            fail_on_error=fail_on_error,
        )
        data = {
            "pack": pack,
            "test_result": None,
            "tests_skipped": skip_tests or skip_deps,
            "warnings": pack.get("warnings") or [],
        }
    else:
        body = {
            "source": source,
            "ref_spec": ref_spec,
            "force": force,
            "skip_tests": skip_tests or skip_deps,
            "skip_deps": skip_deps,
            "fail_on_error": fail_on_error,
        }
        data = _install_call(state, "/packs/install", body)
    out.emit(data, lambda: _report_install(out, data, "installed"))


def _install_call(state: State, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """Progress bars in table mode (a streamed request), one plain request otherwise."""
    if state.printer.human:
        data: dict[str, Any] = run_streamed(state, path, body)
        return data
    result: dict[str, Any] = state.client.post(path, body, timeout=LONG_TIMEOUT)
    return result


def _report_install(out: Printer, data: dict[str, Any], verb: str) -> None:
    _report(out, data["pack"], verb, data.get("tests_skipped"))
    if data.get("previous_version") and data["previous_version"] != data["pack"].get("version"):
        out.info(f"Previous version: {data['previous_version']}")
    for dependency in data.get("dependencies_installed") or []:
        out.info(f"Dependency installed: {dependency}")
    for warning in data.get("warnings") or []:
        out.warn(warning)
    result = data.get("test_result")
    if isinstance(result, dict):
        if result.get("status") == "passed":
            out.success("All tests passed")
        else:
            out.fail("Some tests failed")
        out.info(f"Tests: {result.get('passed')}/{result.get('totalTests')} passed")


@app.command()
def upgrade(
    ref: RefArg,
    version: Annotated[
        str | None, typer.Option("--version", help="Registry version (default: the latest).")
    ] = None,
    source: Annotated[
        str | None, typer.Option("--source", "-s", help="Fetch from here instead of the recorded source.")
    ] = None,
    ref_spec: Annotated[
        str | None, typer.Option("--ref-spec", "-r", help="Git branch, tag or commit.")
    ] = None,
    skip_tests: SkipTestsOpt = False,
    skip_deps: Annotated[bool, typer.Option("--skip-deps", help="Do not check pack dependencies.")] = False,
    allow_downgrade: Annotated[
        bool, typer.Option("--allow-downgrade", help="Accept a version older than the installed one.")
    ] = False,
) -> None:
    """Upgrade an installed pack from where it came from (registry, git, archive), keeping its config."""
    state = current()
    out = state.printer
    if out.human:
        out.info(f"Upgrading pack '{ref}'...")
    body = {
        "source": source,
        "version": version,
        "ref_spec": ref_spec,
        "skip_tests": skip_tests,
        "skip_deps": skip_deps,
        "allow_downgrade": allow_downgrade,
    }
    data = _install_call(state, f"/packs/{ref}/upgrade", body)
    out.emit(data, lambda: _report_install(out, data, "upgraded"))


@app.command()
def uninstall(
    ref: RefArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    force: Annotated[
        bool, typer.Option("--force", "-f", help="Uninstall even when other packs depend on it.")
    ] = False,
) -> None:
    """Remove a pack: its components, environments and files (executions keep their history)."""
    state = current()
    if not confirm(state, f"Are you sure you want to uninstall pack '{ref}'?", yes):
        state.printer.info("Uninstall cancelled")
        return
    state.client.call("DELETE", f"/packs/{ref}", params={"force": "true"} if force else None)
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
    server: Annotated[
        bool,
        typer.Option("--server", help="Run the tests of the pack installed on the server and store the run."),
    ] = False,
) -> None:
    """Run a pack's tests on this machine (or on the server with --server); exits 1 when tests fail."""
    state = current()
    out = state.printer
    if server:
        result = state.client.post(f"/packs/{pack}/test", timeout=LONG_TIMEOUT)
        _show_tests(out, result, verbose=verbose, detailed=detailed)
        return
    directory = Path(pack)
    if directory.is_dir():
        if out.human:
            out.info(f"Testing pack from local directory: {directory}")
    else:
        directory = Path("packs") / pack
        if not directory.is_dir():
            raise CliError(f"Pack '{pack}' not found. Provide a pack name or path to a pack directory.")
    try:
        manifest = load_yaml(directory / "pack.yaml") if (directory / "pack.yaml").is_file() else None
    except yaml.YAMLError as exc:
        raise CliError(f"pack.yaml in {directory} is not valid YAML: {exc}") from exc
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
    _show_tests(out, run_pack_tests(directory, manifest), verbose=verbose, detailed=detailed)


def _show_tests(out: Printer, result: dict[str, Any], *, verbose: bool, detailed: bool) -> None:
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


# -- registries (read the server configuration file, docs/cli.md) ---------------------------------


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


@app.command()
def search(
    keyword: str,
    registry: Annotated[
        str | None, typer.Option("--registry", "-r", help="Only the registry with this name.")
    ] = None,
    server: Annotated[
        bool, typer.Option("--server", help="Search the registries configured on the server instead.")
    ] = False,
) -> None:
    """Search the configured registries for packs matching KEYWORD."""
    state = current()
    out = state.printer
    if out.human:
        where = f"registry '{registry}'" if registry else "all registries"
        out.info(f"Searching {where} for '{keyword}'...")
    if server:
        hits: list[dict[str, Any]] = state.client.get(
            "/packs/registry/search", {"q": keyword, "registry": registry}
        )
    else:
        settings = _registry_settings()
        if not settings.enabled:
            raise CliError("Pack registry system is disabled in configuration")
        try:
            hits, warnings = asyncio.run(registry_index.search(settings, keyword, registry))
        except AttuneError as exc:
            if registry is not None and exc.status == 400:
                raise CliError(f"Failed to fetch registry: {exc.message}") from exc
            raise CliError(exc.message) from exc
        for warning in warnings:
            out.warn(warning)
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


# -- checksums and index files (local, docs/cli.md; in pack_files.py) ---------------------------

app.command()(pack_files.checksum)
app.command("index-entry")(pack_files.index_entry)
app.command("index-update")(pack_files.index_update)
app.command("index-merge")(pack_files.index_merge)
