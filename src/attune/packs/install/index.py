"""Registry indices (docs/packs.md): fetching, caching, lookup and keyword search.

Indices are searched in ascending ``priority``; an index that cannot be fetched is skipped with a
warning. ``http(s)`` indices are cached per URL for ``cache_ttl`` seconds; ``file://`` indices are
read every time. Install-source URLs that are relative resolve against their index's URL.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlparse

import httpx

from attune.errors import BadRequest, NotFound
from attune.packs.install import versions
from attune.settings import PackRegistrySettings, RegistryIndex

log = logging.getLogger(__name__)

MAX_INDEX_BYTES = 10 * 1024 * 1024
"""Largest index document accepted."""

_CACHE: dict[str, tuple[float, dict[str, Any]]] = {}


class RegistryError(BadRequest):
    """An index cannot be fetched or is malformed (HTTP 400)."""


@dataclass(frozen=True)
class InstallSource:
    type: str  # "git" or "archive"
    url: str
    ref: str | None = None
    checksum: str | None = None


@dataclass(frozen=True)
class IndexEntry:
    """One pack of an index, with its install sources in preference order (git first)."""

    ref: str
    version: str
    registry: str
    sources: list[InstallSource]
    dependencies: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    index_url: str = ""
    #: The index's ``headers``; sent with archive downloads from the index's own origin only.
    headers: dict[str, str] = field(default_factory=dict)

    def headers_for(self, url: str) -> dict[str, str]:
        def origin(u: str) -> tuple[str, str]:
            parsed = urlparse(u)
            return parsed.scheme.lower(), parsed.netloc.lower()

        return dict(self.headers) if self.headers and origin(url) == origin(self.index_url) else {}

    def summary(self) -> dict[str, Any]:
        keys = ("ref", "label", "version", "description", "author", "keywords")
        return {**{key: self.raw.get(key) for key in keys}, "registry": self.registry}


def file_path(url: str) -> Path:
    """The local path of a ``file://`` URL."""
    parsed = urlparse(url)
    return Path(unquote(parsed.path))


def _check_scheme(url: str, settings: PackRegistrySettings, what: str) -> None:
    scheme = urlparse(url).scheme.lower()
    if scheme == "http" and not settings.allow_http:
        raise RegistryError(f"{what} {url} uses http, which pack_registry.allow_http does not allow")
    if scheme not in ("http", "https", "file"):
        raise RegistryError(f"{what} {url} must be an https://, http:// or file:// URL")


def check_source_url(url: str, settings: PackRegistrySettings) -> None:
    """An install source taken from an index may use http only when ``allow_http`` is set."""
    if urlparse(url).scheme.lower() == "http" and not settings.allow_http:
        raise RegistryError(f"Install source {url} uses http, which pack_registry.allow_http does not allow")


def _read_file(path: Path) -> bytes:
    if not path.is_file():
        raise RegistryError(f"Index file not found: {path}")
    if path.stat().st_size > MAX_INDEX_BYTES:
        raise RegistryError(f"Index {path} is larger than {MAX_INDEX_BYTES} bytes")
    return path.read_bytes()


async def _download(index: RegistryIndex, seconds: float) -> bytes:
    async with (
        httpx.AsyncClient(timeout=seconds, follow_redirects=True) as client,
        client.stream("GET", index.url, headers=index.headers) as response,
    ):
        if response.is_error:
            raise RegistryError(f"Index {index.url} answered HTTP {response.status_code}")
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > MAX_INDEX_BYTES:
                raise RegistryError(f"Index {index.url} is larger than {MAX_INDEX_BYTES} bytes")
            chunks.append(chunk)
        return b"".join(chunks)


async def fetch_index(index: RegistryIndex, settings: PackRegistrySettings) -> dict[str, Any]:
    """The parsed index document; raises :class:`RegistryError`."""
    _check_scheme(index.url, settings, "Registry index")
    remote = not index.url.lower().startswith("file:")
    if remote and settings.cache_enabled:
        cached = _CACHE.get(index.url)
        if cached is not None and time.monotonic() - cached[0] < settings.cache_ttl:
            return cached[1]
    try:
        if remote:
            body = await _download(index, settings.timeout)
        else:
            body = await asyncio.to_thread(_read_file, file_path(index.url))
        document = json.loads(body)
    except httpx.HTTPError as exc:
        raise RegistryError(f"Cannot fetch index {index.url}: {exc}") from exc
    except (OSError, ValueError) as exc:
        raise RegistryError(f"Index {index.url} is not valid JSON: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("packs"), list):
        raise RegistryError(f"Index {index.url} has no 'packs' array")
    if remote and settings.cache_enabled:
        _CACHE[index.url] = (time.monotonic(), document)
    return document


def enabled_indices(settings: PackRegistrySettings, name: str | None = None) -> list[RegistryIndex]:
    if not settings.enabled:
        raise BadRequest("Pack registry system is disabled in configuration")
    indices = sorted((i for i in settings.indices if i.enabled), key=lambda i: i.priority)
    if name is not None:
        indices = [i for i in indices if i.name == name]
        if not indices:
            raise NotFound(f"No enabled registry named '{name}'")
    return indices


def _source(raw: Any, base_url: str) -> InstallSource | None:
    if not isinstance(raw, dict) or raw.get("type") not in ("git", "archive") or not raw.get("url"):
        return None
    url = str(raw["url"])
    if not urlparse(url).scheme and not url.startswith("git@"):
        url = urljoin(base_url, url)
    checksum = raw.get("checksum")
    return InstallSource(
        type=str(raw["type"]),
        url=url,
        ref=str(raw["ref"]) if raw.get("ref") else None,
        checksum=str(checksum) if checksum else None,
    )


def parse_entry(raw: Any, index: RegistryIndex) -> IndexEntry | None:
    """An index entry, or ``None`` when it lacks a ref, a version or any usable install source."""
    if not isinstance(raw, dict) or not raw.get("ref") or not raw.get("version"):
        return None
    sources = [s for s in (_source(item, index.url) for item in raw.get("install_sources") or []) if s]
    if not sources:
        return None
    sources.sort(key=lambda s: s.type != "git")  # stable: git sources first, then archives
    deps = raw.get("dependencies") if isinstance(raw.get("dependencies"), dict) else {}
    packs = [str(p) for p in (deps or {}).get("packs") or [] if isinstance(p, str)]
    return IndexEntry(
        ref=str(raw["ref"]),
        version=str(raw["version"]),
        registry=index.name or index.url,
        sources=sources,
        dependencies=packs,
        raw=raw,
        index_url=index.url,
        headers=dict(index.headers),
    )


async def find(settings: PackRegistrySettings, ref: str, version: str | None = None) -> IndexEntry:
    """The entry for ``ref`` from the first index (by priority) that has it, in ``version`` if given.

    ``version`` ``None`` or ``latest`` takes whatever version the index lists.
    """
    wanted = None if version in (None, "", "latest") else version
    seen: list[str] = []
    problems: list[str] = []
    for index in enabled_indices(settings):
        try:
            document = await fetch_index(index, settings)
        except RegistryError as exc:
            log.warning("skipping registry index: %s", exc.message)
            problems.append(exc.message)
            continue
        for raw in document["packs"]:
            entry = parse_entry(raw, index)
            if entry is None or entry.ref != ref:
                continue
            if wanted is None or versions.compare(entry.version, wanted) == 0:
                return entry
            seen.append(f"{entry.version} in '{entry.registry}'")
    where = f" (unreachable: {'; '.join(problems)})" if problems else ""
    if seen:
        raise NotFound(
            f"Pack '{ref}' version {wanted} not found in any registry (available: {', '.join(seen)}){where}"
        )
    raise NotFound(f"Pack '{ref}' not found in any registry{where}")


def _matches(raw: dict[str, Any], needle: str) -> bool:
    texts = [raw.get("ref"), raw.get("label"), raw.get("description"), *(raw.get("keywords") or [])]
    return any(needle in str(text).lower() for text in texts if text)


async def search(
    settings: PackRegistrySettings, keyword: str, registry: str | None = None
) -> tuple[list[dict[str, Any]], list[str]]:
    """(hits, warnings): entries whose ref, label, description or a keyword contains ``keyword``.

    With ``registry`` only the indices of that name are read and a fetch error is raised.
    """
    needle = keyword.lower()
    hits: list[dict[str, Any]] = []
    warnings: list[str] = []
    for index in enabled_indices(settings, registry):
        try:
            document = await fetch_index(index, settings)
        except RegistryError as exc:
            if registry is not None:
                raise
            warnings.append(f"Skipping registry {index.name or index.url}: {exc.message}")
            continue
        for raw in document["packs"]:
            if isinstance(raw, dict) and raw.get("ref") and _matches(raw, needle):
                keys = ("ref", "label", "version", "description", "author", "keywords")
                hits.append({**{key: raw.get(key) for key in keys}, "registry": index.name or index.url})
    return hits, warnings
