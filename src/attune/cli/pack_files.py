"""``attune pack checksum`` and the index-file commands: local tooling, no server (docs/cli.md).

Registered on the ``pack`` command group by :mod:`attune.cli.pack`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from attune.cli import pack_index
from attune.cli.errors import CliError
from attune.cli.state import current
from attune.packs.install.checksum import directory_checksum


def checksum(
    path: Path,
    stub: Annotated[
        bool, typer.Option("--json", help="Print an install-source stub for an index entry.")
    ] = False,
) -> None:
    """Checksum of a pack directory (docs/packs.md) or of an archive file."""
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
    digest = f"sha256:{directory_checksum(path)}"

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
