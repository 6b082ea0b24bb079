"""Local pack tooling: directory checksums and registry index files (docs/packs.md, docs/cli.md)."""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from attune.cli.errors import CliError
from attune.domain import safe_yaml
from attune.packs.install.checksum import directory_checksum, file_checksum

#: Never shipped in an upload: VCS data, caches and locally built environments.
UPLOAD_EXCLUDES = {".git", "__pycache__", ".pytest_cache", ".mypy_cache", ".venv", "venv", "node_modules"}


def checksum(path: Path) -> str:
    """The directory checksum of a directory, the SHA-256 of a file's bytes otherwise."""
    return directory_checksum(path) if path.is_dir() else file_checksum(path)


def is_archive(path: Path) -> bool:
    return path.name.endswith((".zip", ".tar.gz", ".tgz"))


def tar_directory(directory: Path) -> bytes:
    """A ``.tar.gz`` of a pack directory (files under one top-level folder), without caches."""

    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        parts = Path(info.name).parts
        return None if any(part in UPLOAD_EXCLUDES for part in parts) else info

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(directory, arcname=directory.resolve().name, filter=keep)
    return buffer.getvalue()


def read_pack_yaml(directory: Path) -> dict[str, Any]:
    if not directory.is_dir():
        raise CliError(f"Path is not a directory: {directory}")
    manifest = directory / "pack.yaml"
    if not manifest.is_file():
        raise CliError(f"pack.yaml not found in: {directory}")
    try:
        doc = safe_yaml.load(manifest.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise CliError(f"{manifest} is not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise CliError(f"{manifest} must contain a mapping")
    if not doc.get("ref") and isinstance(doc.get("name"), str):
        doc = {**doc, "ref": doc["name"]}  # a StackStorm pack: its name is its ref
    for key in ("ref", "version"):
        if not doc.get(key):
            raise CliError(f"'{key}' field not found in pack.yaml")
    return doc


def _count(doc: dict[str, Any], directory: Path, key: str) -> int:
    value = doc.get(key)
    if isinstance(value, (dict, list)):
        return len(value)
    folder = directory / key
    return len([p for p in folder.glob("*.y*ml")]) if folder.is_dir() else 0


def index_entry(
    directory: Path,
    *,
    git_url: str | None = None,
    git_ref: str | None = None,
    archive_url: str | None = None,
    template: bool = True,
) -> tuple[dict[str, Any], bool]:
    """(entry, used_template) for a registry index, built from ``pack.yaml`` (docs/packs.md)."""
    doc = read_pack_yaml(directory)
    ref, version = str(doc["ref"]), str(doc["version"])
    digest = f"sha256:{directory_checksum(directory)}"
    entry: dict[str, Any] = {
        "ref": ref,
        "label": doc.get("label") or ref,
        "description": doc.get("description") or "",
        "version": version,
        "author": doc.get("author") or "Unknown",
        "license": doc.get("license") or "UNLICENSED",
        "keywords": list(doc.get("keywords") or doc.get("tags") or []),
        "runtime_deps": list(doc.get("runtime_deps") or []),
    }
    for key in ("email", "homepage", "repository"):
        if doc.get(key):
            entry[key] = doc[key]
    sources: list[dict[str, Any]] = []
    if git_url:
        sources.append({"type": "git", "url": git_url, "ref": git_ref or f"v{version}", "checksum": digest})
    if archive_url:
        sources.append({"type": "archive", "url": archive_url, "checksum": digest})
    used_template = False
    if not sources and template:
        used_template = True
        sources.append(
            {
                "type": "git",
                "url": f"https://github.com/your-org/{ref}",
                "ref": f"v{version}",
                "checksum": digest,
            }
        )
    entry["install_sources"] = sources
    entry["contents"] = {
        "actions": _count(doc, directory, "actions"),
        "sensors": _count(doc, directory, "sensors"),
        "triggers": _count(doc, directory, "triggers"),
        "rules": 0,
        "workflows": 0,
    }
    return entry, used_template


def load_index(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise CliError(f"Index file not found: {path}")
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise CliError(f"Index file {path} is not valid JSON: {exc}") from exc
    if not isinstance(index, dict) or not isinstance(index.get("packs"), list):
        raise CliError("Invalid index format: missing 'packs' array")
    return index


def write_json(path: Path, value: Any) -> None:
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(temp, path)


_SEMVER = re.compile(r"^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:-([0-9A-Za-z.-]+))?")


def version_key(version: str) -> tuple[Any, ...]:
    """Sort key comparing versions as semver (a pre-release sorts before its release)."""
    match = _SEMVER.match(version.strip())
    if not match:
        return (-1, -1, -1, 0, version)
    major, minor, patch, pre = match.groups()
    return (int(major), int(minor or 0), int(patch or 0), 0 if pre else 1, pre or "")


def merge_indices(inputs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int, int]:
    """(packs, total loaded, duplicates resolved): for a repeated ref the higher version wins."""
    chosen: dict[str, dict[str, Any]] = {}
    total = duplicates = 0
    for index in inputs:
        for entry in index["packs"]:
            if not isinstance(entry, dict) or not entry.get("ref"):
                raise CliError("Index entry without 'ref'")
            total += 1
            ref = str(entry["ref"])
            if ref in chosen:
                duplicates += 1
                if version_key(str(entry.get("version", ""))) <= version_key(
                    str(chosen[ref].get("version", ""))
                ):
                    continue
            chosen[ref] = entry
    return [chosen[ref] for ref in sorted(chosen)], total, duplicates


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
