"""Test helpers for pack installs: pack directories, local git repositories, archives and index files."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
import zipfile
from pathlib import Path
from typing import Any

from attune.packs.install.checksum import directory_checksum

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def make_pack(
    root: Path,
    ref: str = "demo",
    version: str = "1.0.0",
    *,
    dependencies: tuple[str, ...] = (),
    extra: str = "",
    action: str = "hello",
    test_script: str | None = None,
    on_failure: str = "block",
) -> Path:
    """A pack ``root/ref`` with one shell action; ``test_script`` adds a shell test runner."""
    pack = root / ref
    (pack / "actions").mkdir(parents=True, exist_ok=True)
    manifest = [
        f"ref: {ref}",
        f"label: {ref.title()}",
        f'version: "{version}"',
        "conf_schema:",
        "  greeting: {type: string, default: hello}",
    ]
    if dependencies:
        manifest.append(f"dependencies: {json.dumps(list(dependencies))}")
    if test_script is not None:
        manifest += [
            "testing:",
            "  enabled: true",
            "  discovery: {method: directory, path: tests}",
            "  runners:",
            "    shell: {type: script, entry_point: tests/run.sh, timeout: 30}",
            f"  on_failure: {on_failure}",
        ]
        (pack / "tests").mkdir(exist_ok=True)
        (pack / "tests" / "run.sh").write_text(test_script)
    (pack / "pack.yaml").write_text("\n".join(manifest) + "\n" + extra)
    (pack / "actions" / f"{action}.yaml").write_text(
        f"name: {action}\nrunner_type: shell\nentry_point: {action}.sh\n"
    )
    (pack / "actions" / f"{action}.sh").write_text(f"echo {ref} {version}\n")
    return pack


def git(cwd: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", *args], cwd=cwd, env={**os.environ, **GIT_ENV}, capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def init_repo(path: Path) -> Path:
    """``git init`` a directory (default branch ``main``)."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    return path


def commit_all(repo: Path, message: str, tag: str | None = None) -> str:
    """Commit everything (and tag it); return the commit id."""
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    if tag:
        git(repo, "tag", tag)
    return git(repo, "rev-parse", "HEAD")


def tar_gz(source: Path, top_level: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(source.rglob("*")):
            rel = path.relative_to(source).as_posix()
            tar.add(path, arcname=f"{top_level}/{rel}" if top_level else rel, recursive=False)
    return buffer.getvalue()


def zip_bytes(source: Path, top_level: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for path in sorted(source.rglob("*")):
            rel = path.relative_to(source).as_posix()
            zf.write(path, f"{top_level}/{rel}" if top_level else rel)
    return buffer.getvalue()


def sha256_of(pack_dir: Path) -> str:
    return f"sha256:{directory_checksum(pack_dir)}"


def index_entry(
    ref: str,
    version: str,
    sources: list[dict[str, Any]],
    *,
    dependencies: tuple[str, ...] = (),
    **extra: Any,
) -> dict[str, Any]:
    return {
        "ref": ref,
        "label": ref.title(),
        "description": f"The {ref} pack",
        "version": version,
        "author": "Test",
        "license": "MIT",
        "keywords": [ref, "testing"],
        "runtime_deps": ["shell"],
        "install_sources": sources,
        "contents": {"actions": [{"name": "hello", "description": ""}]},
        "dependencies": {"packs": list(dependencies)},
        **extra,
    }


def write_index(path: Path, entries: list[dict[str, Any]], name: str = "Test Registry") -> str:
    """Write an index file and return its ``file://`` URL."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {
                "registry_name": name,
                "registry_url": path.parent.as_uri(),
                "version": "1.0",
                "last_updated": "2025-03-01T09:30:00Z",
                "packs": entries,
            }
        )
    )
    return path.as_uri()
