"""Fetching a pack into a staging directory (docs/packs.md): local directories, archives and git.

Everything fetched is untrusted: archives are extracted with member checks (no absolute paths,
``..``, outside links or devices; bounded size and entry count), git runs without prompts and only
over known transports, and every fetched tree is checked for links that leave it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

import httpx

from attune.errors import BadRequest
from attune.packs import archive
from attune.packs.install.index import file_path
from attune.packs.install.progress import Progress, ProgressEvent, Throttle
from attune.settings import PackInstallSettings

#: Never copied from a local directory: VCS data, caches and environments built in place.
COPY_EXCLUDES = (".git", "__pycache__", ".pytest_cache", ".mypy_cache", ".venv", "node_modules")

_GIT_PROTOCOLS = "file:git:http:https:ssh"
_GIT_PROGRESS = re.compile(r"Receiving objects:\s+\d+% \((\d+)/(\d+)\)")
_ERROR_TAIL = 2000


class FetchError(BadRequest):
    """The source cannot be fetched or does not hold a usable pack (HTTP 400)."""


@dataclass
class Fetched:
    """A fetched pack: ``root`` holds ``pack.yaml``; ``archive`` is the downloaded file, if any."""

    root: Path
    source_type: str
    source_url: str | None
    source_ref: str | None = None
    git_commit: str | None = None
    archive: Path | None = None


def is_http(source: str) -> bool:
    return source.lower().startswith(("http://", "https://"))


def expand_user(path: Path) -> Path:
    """``path`` with a leading ``~`` or ``~user`` expanded; unchanged when that user is unknown."""
    try:
        return path.expanduser()
    except RuntimeError:  # "~nosuchuser/...": a name that cannot exist, not a server error
        return path


def _local(raw: str) -> Path | None:
    """An existing file or directory: absolute, or relative to the server's working directory."""
    if not raw.strip():
        return None  # "" would name the working directory itself
    path = expand_user(Path(raw))
    if not path.is_absolute():
        path = Path.cwd() / path
    return path.resolve() if path.exists() else None


def classify(source: str, ref_spec: str | None) -> str:
    """The kind of an install source (docs/packs.md).

    ``git``, ``archive`` (a URL), ``local_archive``, ``local_directory`` or ``registry``. ``file://``
    URLs behave like http ones; a local directory with ``ref_spec`` that is a git checkout is git.
    """
    lowered = source.lower()
    if is_http(source) or lowered.startswith("file://"):
        if lowered.startswith("file://"):
            path = file_path(source)
            if path.is_dir():
                return (
                    "git"
                    if ref_spec or (path / ".git").exists() or lowered.endswith(".git")
                    else ("local_directory")
                )
        return "git" if lowered.rstrip("/").endswith(".git") or ref_spec else "archive"
    if lowered.startswith("git@") or "git://" in lowered:
        return "git"
    local = _local(source)
    if local is not None and local.is_file():
        return "local_archive"
    if local is not None and local.is_dir():
        if ref_spec and (local / ".git").exists():
            return "git"
        return "local_directory"
    return "registry"


def local_path(source: str) -> Path:
    """The existing local file or directory named by ``source`` (a path or a ``file://`` URL)."""
    if source.lower().startswith("file://"):
        path = file_path(source)
        if path.exists():
            return path
    found = _local(source)
    if found is None:
        raise FetchError(f"Pack source does not exist: {source}")
    return found


# -- trees -------------------------------------------------------------------------------------


def check_tree(root: Path, *, max_bytes: int, max_entries: int = archive.MAX_MEMBERS) -> None:
    """Refuse links that leave ``root``, special files, and trees larger than the limits."""
    real_root = root.resolve()
    total = entries = 0
    for directory, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(directory) / name
            entries += 1
            if entries > max_entries:
                raise FetchError(f"Pack has more than {max_entries} files and directories")
            if path.is_symlink():
                target = path.resolve()
                if not target.is_relative_to(real_root):
                    raise FetchError(f"Unsafe pack: link '{path.relative_to(root)}' points outside the pack")
                continue
            if name in filenames:
                if not path.is_file():
                    raise FetchError(f"Unsafe pack: '{path.relative_to(root)}' is not a regular file")
                total += path.stat().st_size
                if total > max_bytes:
                    raise FetchError(f"Pack is larger than {max_bytes} bytes")


def find_root(tree: Path, what: str) -> Path:
    """The directory holding ``pack.yaml``: the tree itself, ``pack/``, or a first-level directory."""
    if (tree / "pack.yaml").is_file():
        return tree
    if (tree / "pack" / "pack.yaml").is_file():
        return tree / "pack"
    for child in sorted(tree.iterdir(), key=lambda p: p.name):
        if child.is_dir() and not child.is_symlink() and (child / "pack.yaml").is_file():
            return child
    raise FetchError(
        f"No pack.yaml found in {what}: expected at its root, in pack/ or in a first-level directory"
    )


def copy_directory(source: Path, target: Path) -> None:
    if not (source / "pack.yaml").is_file() and not any(source.iterdir()):
        raise FetchError(f"Pack directory is empty: {source}")
    shutil.copytree(source, target, symlinks=True, ignore=shutil.ignore_patterns(*COPY_EXCLUDES))


# -- archives ----------------------------------------------------------------------------------


def _zip_member(info: zipfile.ZipInfo) -> PurePosixPath:
    name = info.filename.replace("\\", "/")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise FetchError(f"Unsafe pack archive: absolute path '{info.filename}'")
    path = PurePosixPath(name)
    if ".." in path.parts:
        raise FetchError(f"Unsafe pack archive: path '{info.filename}' leaves the archive")
    return PurePosixPath(*[p for p in path.parts if p not in ("", ".")])


def extract_zip(
    file: Path, destination: Path, *, max_bytes: int, max_members: int = archive.MAX_MEMBERS
) -> None:
    """Extract a zip archive safely; sizes are counted as written, so a lying header cannot help."""
    try:
        with zipfile.ZipFile(file) as zf:
            members = zf.infolist()
            if len(members) > max_members:
                raise FetchError(f"Pack archive has more than {max_members} entries")
            written = 0
            for info in members:
                rel = _zip_member(info)
                if not rel.parts:
                    continue
                target = destination.joinpath(*rel.parts)
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, target.open("wb") as out:
                    for chunk in iter(lambda: src.read(1 << 20), b""):
                        written += len(chunk)
                        if written > max_bytes:
                            raise FetchError(f"Pack archive expands to more than {max_bytes} bytes")
                        out.write(chunk)
                # Unix permission bits (never setuid/setgid/sticky); links arrive as plain files.
                mode = (info.external_attr >> 16) & 0o777
                if mode:
                    target.chmod(mode | 0o600)
    except FetchError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise FetchError(f"Invalid pack archive: not a readable .zip file ({exc})") from exc


def extract(file: Path, destination: Path, *, max_bytes: int) -> None:
    """Extract a ``.zip`` or gzip-compressed tar archive (recognised by content, not by name)."""
    with file.open("rb") as handle:
        magic = handle.read(4)
    if magic.startswith(b"PK\x03\x04") or magic.startswith(b"PK\x05\x06"):
        extract_zip(file, destination, max_bytes=max_bytes)
    elif magic.startswith(b"\x1f\x8b"):
        archive.extract_archive(file, destination, max_bytes=max_bytes)
    else:
        raise FetchError("Invalid pack archive: not a readable .tar.gz, .tgz or .zip file")


async def download(
    url: str,
    target: Path,
    *,
    settings: PackInstallSettings,
    progress: Progress,
    pack: str | None,
    headers: dict[str, str] | None = None,
) -> None:
    """Download ``url`` (http(s) or file://) into ``target``, reporting bytes as they arrive."""
    limit = settings.max_archive_bytes
    throttle = Throttle()
    if url.lower().startswith("file://"):
        path = file_path(url)
        if not path.is_file():
            raise FetchError(f"Archive not found: {url}")
        size = path.stat().st_size
        if size > limit:
            raise FetchError(f"Pack archive is larger than {limit} bytes")
        await asyncio.to_thread(shutil.copyfile, path, target)
        progress(ProgressEvent("fetch", f"Copied {url}", pack, size, size, "bytes"))
        return
    try:
        async with (
            httpx.AsyncClient(timeout=settings.fetch_timeout, follow_redirects=True) as client,
            client.stream("GET", url, headers=headers or {}) as response,
        ):
            if response.is_error:
                raise FetchError(f"Downloading {url} failed: HTTP {response.status_code}")
            total = int(response.headers.get("content-length") or 0) or None
            if total is not None and total > limit:
                raise FetchError(f"Pack archive is larger than {limit} bytes")
            received = 0
            with target.open("wb") as out:
                async for chunk in response.aiter_bytes():
                    received += len(chunk)
                    if received > limit:
                        raise FetchError(f"Pack archive is larger than {limit} bytes")
                    out.write(chunk)
                    if throttle.ready():
                        progress(ProgressEvent("fetch", f"Downloading {url}", pack, received, total, "bytes"))
            progress(ProgressEvent("fetch", f"Downloaded {url}", pack, received, total or received, "bytes"))
    except httpx.HTTPError as exc:
        raise FetchError(f"Downloading {url} failed: {exc}") from exc


# -- git ---------------------------------------------------------------------------------------


def _git_environment() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "GIT_TERMINAL_PROMPT": "0",  # never wait for credentials
            "GIT_ALLOW_PROTOCOL": _GIT_PROTOCOLS,  # no ext:: or other command transports
            "GIT_CONFIG_NOSYSTEM": "1",
            "LC_ALL": "C",  # progress lines in a known language
        }
    )
    env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
    return env


def git_url(source: str) -> str:
    """The URL given to git: local paths become ``file://`` URLs; ``-x`` and ``x::`` forms are refused."""
    text = source.strip()
    if not text or text.startswith("-") or "::" in text or any(c in text for c in "\n\r\0"):
        raise FetchError(f"Invalid git repository URL: {source!r}")
    scheme = urlparse(text).scheme.lower()
    if scheme in ("http", "https", "git", "ssh", "file") or text.startswith("git@"):
        return text
    path = expand_user(Path(text))
    if path.exists():
        return path.resolve().as_uri()
    raise FetchError(f"Invalid git repository URL: {source!r}")


async def _git(
    args: list[str], cwd: Path, seconds: float, on_line: Callable[[str], None] | None = None
) -> tuple[int | None, str]:
    """Run ``git args``; return (exit code or None on timeout/spawn failure, stderr tail)."""
    try:
        process = await asyncio.create_subprocess_exec(
            "git",
            *args,
            cwd=cwd,
            env=_git_environment(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        return None, f"cannot run git: {exc.strerror or exc}"
    tail = ""

    async def read_stderr() -> None:
        nonlocal tail
        assert process.stderr is not None
        pending = ""
        while chunk := await process.stderr.read(4096):
            pending += chunk.decode("utf-8", "replace")
            *lines, pending = re.split(r"[\r\n]", pending)
            for line in lines:
                if line.strip():
                    tail = (tail + line + "\n")[-_ERROR_TAIL:]
                    if on_line is not None:
                        on_line(line)
        if pending.strip():
            tail = (tail + pending)[-_ERROR_TAIL:]

    async def drain_stdout() -> None:
        assert process.stdout is not None
        while await process.stdout.read(4096):
            pass

    try:
        await asyncio.wait_for(asyncio.gather(read_stderr(), drain_stdout(), process.wait()), seconds)
    except TimeoutError:
        return None, f"git {args[0]} timed out after {seconds:g} seconds"
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
    return process.returncode, tail


def _git_error(step: str, url: str, tail: str) -> FetchError:
    lines = [
        line
        for line in tail.splitlines()
        if not line.startswith(("Cloning into", "remote:", "Receiving", "Resolving"))
    ]
    detail = "\n".join(lines[-5:]).strip() or tail.strip() or "no output"
    return FetchError(f"git {step} of {url} failed: {detail}")


async def clone(
    url: str,
    ref_spec: str | None,
    target: Path,
    *,
    settings: PackInstallSettings,
    progress: Progress,
    pack: str | None,
) -> str | None:
    """Clone ``url`` at ``ref_spec`` (branch, tag or commit) into ``target``; return the commit id."""
    repo = git_url(url)
    throttle = Throttle()

    def on_line(line: str) -> None:
        match = _GIT_PROGRESS.search(line)
        if match and throttle.ready(final=match[1] == match[2]):
            progress(ProgressEvent("fetch", f"Cloning {url}", pack, int(match[1]), int(match[2]), "objects"))

    timeout = settings.fetch_timeout
    progress(ProgressEvent("fetch", f"Cloning {url}" + (f" at {ref_spec}" if ref_spec else ""), pack))
    base = ["clone", "--progress", "--depth", "1"]
    args = [*base, *(["--branch", ref_spec] if ref_spec else []), "--", repo, str(target)]
    code, tail = await _git(args, target.parent, timeout, on_line)
    if code != 0 and ref_spec:
        # A commit id cannot be cloned by name: fetch the whole history, then check it out.
        await asyncio.to_thread(shutil.rmtree, target, True)
        code, tail = await _git(
            ["clone", "--progress", "--", repo, str(target)], target.parent, timeout, on_line
        )
        if code != 0:
            raise _git_error("clone", url, tail)
        code, tail = await _git(["checkout", "--quiet", "--detach", ref_spec, "--"], target, timeout)
        if code != 0:
            raise _git_error(f"checkout of '{ref_spec}'", url, tail)
    elif code != 0:
        raise _git_error("clone", url, tail)
    return await asyncio.to_thread(_resolve_head, target)


def _resolve_head(repo: Path) -> str | None:
    """The commit id HEAD points to, read from the repository files (no extra process)."""
    git_dir = repo / ".git"
    try:
        text = (git_dir / "HEAD").read_text(encoding="utf-8").strip()
    except OSError:
        return None
    if not text.startswith("ref:"):
        return text or None
    ref = text[4:].strip()
    loose = git_dir / ref
    if loose.is_file():
        return loose.read_text(encoding="utf-8").strip() or None
    packed = git_dir / "packed-refs"
    if packed.is_file():
        for line in packed.read_text(encoding="utf-8").splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1] == ref:
                return parts[0]
    return None


# -- one entry point ---------------------------------------------------------------------------


async def fetch(
    kind: str,
    source: str,
    ref_spec: str | None,
    workdir: Path,
    *,
    settings: PackInstallSettings,
    progress: Progress,
    pack: str | None = None,
    headers: dict[str, str] | None = None,
) -> Fetched:
    """Fetch ``source`` of ``kind`` (see :func:`classify`, not ``registry``) below ``workdir``.

    ``headers`` go with an archive download (a private registry's credentials).
    """
    tree = workdir / "tree"
    limit = settings.max_unpacked_bytes
    if kind == "local_directory":
        path = local_path(source)
        if not path.is_dir():
            raise FetchError(f"Pack directory does not exist: {source}")
        if tree.resolve().is_relative_to(path.resolve()):
            # The copy would land inside what it copies and never end (the data dir, say).
            raise FetchError(f"Pack directory {source} contains the server's staging directory")
        progress(ProgressEvent("fetch", f"Copying {path}", pack))
        await asyncio.to_thread(copy_directory, path, tree)
        fetched = Fetched(tree, kind, str(path), ref_spec)
    elif kind in ("local_archive", "archive"):
        if kind == "local_archive":
            file = local_path(source)
            if file.stat().st_size > settings.max_archive_bytes:
                raise FetchError(f"Pack archive is larger than {settings.max_archive_bytes} bytes")
            url = str(file)
        else:
            file, url = workdir / "download", source
            await download(source, file, settings=settings, progress=progress, pack=pack, headers=headers)
        tree.mkdir()
        progress(ProgressEvent("fetch", "Extracting the archive", pack))
        await asyncio.to_thread(extract, file, tree, max_bytes=limit)
        fetched = Fetched(tree, kind, url, ref_spec, archive=file)
    elif kind == "git":
        commit = await clone(source, ref_spec, tree, settings=settings, progress=progress, pack=pack)
        # Installed packs carry no repository data; the commit is recorded instead.
        await asyncio.to_thread(shutil.rmtree, tree / ".git", True)
        fetched = Fetched(tree, kind, source, ref_spec or commit, git_commit=commit)
    else:
        raise FetchError(f"Cannot fetch a source of kind '{kind}'")
    fetched.root = await asyncio.to_thread(find_root, tree, source)
    await asyncio.to_thread(check_tree, fetched.root, max_bytes=limit)
    return fetched
