"""Registry indices (docs/packs.md) and dependency resolution."""

from __future__ import annotations

from pathlib import Path

import pytest

from attune.errors import AttuneError, BadRequest, NotFound
from attune.packs.install import index
from attune.packs.install.resolve import Candidate, DependencyError, resolve
from attune.settings import PackRegistrySettings, RegistryIndex
from tests.pack_sources import index_entry, write_index


def _git(url: str) -> list[dict[str, str]]:
    return [{"type": "git", "url": url, "ref": "v1", "checksum": "sha256:00"}]


def registry(*indices: RegistryIndex, **options: object) -> PackRegistrySettings:
    return PackRegistrySettings(indices=list(indices), **options)


async def test_indices_are_searched_by_priority_and_version(tmp_path: Path) -> None:
    low = write_index(
        tmp_path / "low" / "index.json",
        [index_entry("slack", "2.0.0", _git("https://git.example/slack.git"))],
        name="Low",
    )
    high = write_index(
        tmp_path / "high" / "index.json",
        [
            index_entry(
                "slack",
                "1.0.0",
                [
                    {"type": "archive", "url": "slack-1.0.0.tgz", "checksum": "sha256:01"},
                    {"type": "git", "url": "https://git.example/slack.git", "checksum": "sha256:02"},
                ],
            ),
            {"ref": "broken"},  # no version, no sources: ignored
        ],
        name="High",
    )
    settings = registry(
        RegistryIndex(url=low, priority=200, name="low"),
        RegistryIndex(url=(tmp_path / "gone.json").as_uri(), priority=1),
        RegistryIndex(url=high, priority=100, name="high"),
    )
    latest = await index.find(settings, "slack")
    assert (latest.version, latest.registry) == ("1.0.0", "high")  # the unreachable index is skipped
    assert [s.type for s in latest.sources] == ["git", "archive"]  # git first
    # Relative source URLs resolve against the index URL.
    assert latest.sources[1].url == (tmp_path / "high" / "slack-1.0.0.tgz").as_uri()
    assert (await index.find(settings, "slack", "2.0.0")).registry == "low"
    with pytest.raises(NotFound, match=r"version 3\.0\.0 not found .*available: 1\.0\.0 in 'high'"):
        await index.find(settings, "slack", "3.0.0")
    with pytest.raises(NotFound, match="Pack 'broken' not found in any registry"):
        await index.find(settings, "broken")

    hits, warnings = await index.search(settings, "SLACK")
    assert [(h["ref"], h["version"], h["registry"]) for h in hits] == [
        ("slack", "1.0.0", "high"),
        ("slack", "2.0.0", "low"),
    ]
    assert len(warnings) == 1 and "Index file not found" in warnings[0]
    by_keyword, _ = await index.search(settings, "testing", "low")
    assert [h["registry"] for h in by_keyword] == ["low"]  # keywords match


async def test_registry_settings_are_enforced(tmp_path: Path) -> None:
    with pytest.raises(BadRequest, match="disabled"):
        await index.find(registry(enabled=False), "slack")
    with pytest.raises(NotFound):
        await index.search(registry(RegistryIndex(url="https://r.example/i.json", name="a")), "x", "b")
    http = registry(RegistryIndex(url="http://r.example/index.json", name="plain"))
    with pytest.raises(BadRequest, match="allow_http"):
        await index.search(http, "x", "plain")
    with pytest.raises(BadRequest, match="allow_http"):
        index.check_source_url("http://files.example/p.tgz", http)
    bad = tmp_path / "index.json"
    bad.write_text('{"packs": 3}')
    with pytest.raises(BadRequest, match="has no 'packs' array"):
        await index.fetch_index(RegistryIndex(url=bad.as_uri()), registry())


# -- resolution ------------------------------------------------------------------------------------


def cand(ref: str, version: str, *deps: str, python: str | None = None) -> Candidate[str]:
    return Candidate(ref, version, list(deps), python, None, ref)


def entry(ref: str, version: str) -> index.IndexEntry:
    return index.IndexEntry(ref, version, "reg", [index.InstallSource("git", f"https://g/{ref}.git")])


async def test_missing_dependencies_are_fetched_and_installed_first() -> None:
    available = {"utils": cand("utils", "1.4.0", "base@~2.1"), "base": cand("base", "2.1.5")}
    staged: list[str] = []

    async def find(ref: str) -> index.IndexEntry:
        if ref not in available:
            raise NotFound(f"Pack '{ref}' not found in any registry")
        return entry(ref, available[ref].version)

    async def stage(found: index.IndexEntry) -> Candidate[str]:
        staged.append(found.ref)
        return available[found.ref]

    plan = await resolve(
        cand("app", "1.0.0", "utils@^1.2", "core"),
        installed={"core": "1.0.0"},
        dependents={},
        find=find,
        stage=stage,
    )
    assert [c.ref for c in plan.install_first] == ["base", "utils"]  # deepest first
    assert staged == ["utils", "base"]


async def test_every_problem_is_reported_together() -> None:
    async def find(ref: str) -> index.IndexEntry:
        if ref == "old":
            return entry("old", "1.0.0")
        raise NotFound(f"Pack '{ref}' not found in any registry")

    async def stage(found: index.IndexEntry) -> Candidate[str]:
        raise AssertionError("nothing satisfiable to fetch")

    with pytest.raises(DependencyError) as caught:
        await resolve(
            cand("app", "2.0.0", "utils@^2", "ghost", "old@>=2", "bad@>>1", python="99"),
            installed={"utils": "1.5.0", "app": "1.0.0"},
            dependents={"app": [("web", "app@^1.0"), ("cli", "app")]},
            find=find,
            stage=stage,
        )
    assert caught.value.problems == [
        "Pack 'app' requires utils@^2, but utils 1.5.0 is installed",
        "Pack 'ghost' (required by 'app') is not installed: Pack 'ghost' not found in any registry",
        "Pack 'old' (required by 'app') is not installed; "
        "registry 'reg' offers 1.0.0, which does not satisfy >=2",
        "Pack 'app' has an invalid dependency 'bad@>>1'",
        caught.value.problems[4],  # the Python found on this machine is named
        "Installing app 2.0.0 would break pack 'web', which requires app@^1.0",
    ]
    assert caught.value.problems[4].startswith("Pack 'app' needs Python 99 or newer")
    assert caught.value.message.startswith("Pack dependency validation failed:\n  - Pack 'app' requires")
    assert isinstance(caught.value, AttuneError) and caught.value.status == 400


async def test_without_a_registry_missing_dependencies_are_named() -> None:
    async def stage(found: index.IndexEntry) -> Candidate[str]:
        raise AssertionError

    with pytest.raises(DependencyError, match=r"'utils' .* no pack registry is configured"):
        await resolve(cand("app", "1.0.0", "utils"), installed={}, dependents={}, find=None, stage=stage)


def test_registry_credentials_only_go_to_the_registry_itself() -> None:
    found = index.IndexEntry(
        "x",
        "1.0.0",
        "acme",
        [],
        index_url="https://packs.acme.example/index.json",
        headers={"Authorization": "t"},
    )
    assert found.headers_for("https://packs.acme.example/files/x-1.0.0.tgz") == {"Authorization": "t"}
    assert found.headers_for("https://elsewhere.example/x-1.0.0.tgz") == {}
    assert found.headers_for("http://packs.acme.example/files/x-1.0.0.tgz") == {}


def test_upgrades_fetch_from_where_the_pack_came_from() -> None:
    from attune.db.models import Pack
    from attune.packs.install.installer import upgrade_request

    def pack(source_type: str | None, url: str | None) -> Pack:
        return Pack(ref="demo", label="Demo", version="1.0.0", source_type=source_type, source_url=url)

    git = pack("git", "https://git.example/demo.git")
    assert upgrade_request(git, source=None, version=None, ref_spec=None) == (git.source_url, None, "git")
    assert upgrade_request(git, source=None, version="1.2.0", ref_spec=None)[1] == "v1.2.0"
    assert upgrade_request(pack("registry", "x"), source=None, version="2.0.0", ref_spec=None) == (
        "demo@2.0.0",
        None,
        "registry",
    )
    assert upgrade_request(pack(None, None), source=None, version=None, ref_spec=None) == (
        "demo",
        None,
        "registry",
    )
    archive = pack("archive", "https://files.example/demo.tgz")
    assert upgrade_request(archive, source=None, version=None, ref_spec=None) == (
        archive.source_url,
        None,
        "archive",
    )
    with pytest.raises(BadRequest, match="give a source"):
        upgrade_request(archive, source=None, version="2.0.0", ref_spec=None)
    with pytest.raises(BadRequest, match="was uploaded"):
        upgrade_request(pack("local_archive", "demo.tar.gz"), source=None, version=None, ref_spec=None)
    assert upgrade_request(git, source="/srv/demo", version=None, ref_spec="x") == ("/srv/demo", "x", None)
