"""Fetching packs (docs/packs.md): source kinds, git, archives, tree checks, checksums."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import pytest

from attune.errors import BadRequest
from attune.packs.install import checksum, sources
from attune.packs.install.progress import ProgressEvent
from attune.settings import PackInstallSettings
from tests.pack_sources import commit_all, git, init_repo, make_pack, tar_gz, zip_bytes

SETTINGS = PackInstallSettings()


def test_source_kinds(tmp_path: Path) -> None:
    archive = tmp_path / "p.tar.gz"
    archive.write_bytes(b"x")
    repo = init_repo(tmp_path / "repo")
    plain = make_pack(tmp_path, "plain")
    assert sources.classify("https://git.example/x/pack.git", None) == "git"
    assert sources.classify("https://files.example/pack", "v1") == "git"
    assert sources.classify("https://files.example/pack.tar.gz", None) == "archive"
    assert sources.classify("git@github.com:acme/pack.git", None) == "git"
    assert sources.classify(str(archive), None) == "local_archive"
    assert sources.classify(str(plain), None) == "local_directory"
    assert sources.classify(str(repo), "main") == "git"  # a checkout plus a ref is cloned
    assert sources.classify(repo.as_uri(), None) == "git"
    assert sources.classify(archive.as_uri(), None) == "archive"
    assert sources.classify("slack@1.0.0", None) == "registry"


@pytest.mark.parametrize("url", ["--upload-pack=touch /tmp/x", "ext::sh -c id", "/does/not/exist"])
def test_git_urls_that_could_run_commands_are_refused(url: str) -> None:
    with pytest.raises(BadRequest, match="Invalid git repository URL"):
        sources.git_url(url)


async def test_clone_by_tag_branch_and_commit(tmp_path: Path) -> None:
    repo = init_repo(tmp_path / "repo")
    make_pack(repo, "demo", "1.0.0")
    first = commit_all(repo, "v1", tag="v1.0.0")
    make_pack(repo, "demo", "1.1.0")
    commit_all(repo, "v1.1")
    events: list[ProgressEvent] = []

    async def fetch(ref_spec: str | None, slot: str) -> sources.Fetched:
        (tmp_path / slot).mkdir()
        return await sources.fetch(
            "git", repo.as_uri(), ref_spec, tmp_path / slot, settings=SETTINGS, progress=events.append
        )

    tagged = await fetch("v1.0.0", "a")
    assert '"1.0.0"' in (tagged.root / "pack.yaml").read_text()
    assert tagged.root == tmp_path / "a" / "tree" / "demo"  # found in a first-level directory
    assert not (tmp_path / "a" / "tree" / ".git").exists()  # no repository data is installed
    assert (tagged.source_type, tagged.source_ref, tagged.git_commit) == ("git", "v1.0.0", first)

    head = await fetch(None, "b")
    assert '"1.1.0"' in (head.root / "pack.yaml").read_text() and head.source_ref == head.git_commit

    by_commit = await fetch(first, "c")  # a commit id needs the full history
    assert '"1.0.0"' in (by_commit.root / "pack.yaml").read_text() and by_commit.git_commit == first
    assert any(e.stage == "fetch" for e in events)

    (tmp_path / "d").mkdir()
    with pytest.raises(BadRequest, match=r"git checkout of 'v9.9.9' .* failed"):
        await sources.fetch(
            "git", repo.as_uri(), "v9.9.9", tmp_path / "d", settings=SETTINGS, progress=events.append
        )
    (tmp_path / "e").mkdir()
    with pytest.raises(BadRequest, match=r"git clone of .* failed"):
        await sources.fetch(
            "git",
            (tmp_path / "missing.git").as_uri(),
            None,
            tmp_path / "e",
            settings=SETTINGS,
            progress=events.append,
        )


async def test_archives_zip_and_tar_from_files_and_urls(tmp_path: Path) -> None:
    pack = make_pack(tmp_path / "src", "demo")
    (pack / "actions" / "hello.sh").chmod(0o755)
    zipped = tmp_path / "demo.zip"
    zipped.write_bytes(zip_bytes(pack, top_level="pack"))
    tarred = tmp_path / "demo.tgz"
    tarred.write_bytes(tar_gz(pack))
    for kind, source, slot in [
        ("local_archive", str(zipped), "z"),
        ("archive", tarred.as_uri(), "t"),
    ]:
        (tmp_path / slot).mkdir()
        fetched = await sources.fetch(
            kind, source, None, tmp_path / slot, settings=SETTINGS, progress=lambda e: None
        )
        assert checksum.directory_checksum(fetched.root) == checksum.directory_checksum(pack)
        assert fetched.archive is not None
        assert os.access(fetched.root / "actions" / "hello.sh", os.X_OK)  # permissions survive a zip


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, content in members.items():
            zf.writestr(name, content)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({"../evil.txt": b"x"}, "leaves the archive"),
        ({"/etc/evil": b"x"}, "absolute path"),
        ({"pack.yaml": b"x" * 2000}, "expands to more than 1000 bytes"),
    ],
)
def test_unsafe_zips_are_refused(tmp_path: Path, members: dict[str, bytes], message: str) -> None:
    file = tmp_path / "bad.zip"
    file.write_bytes(_zip(members))
    (tmp_path / "out").mkdir()
    with pytest.raises(BadRequest, match=message):
        sources.extract(file, tmp_path / "out", max_bytes=1000)
    assert not (tmp_path / "evil.txt").exists()


def test_unknown_archive_formats_are_refused(tmp_path: Path) -> None:
    file = tmp_path / "pack.rar"
    file.write_bytes(b"Rar!\x1a\x07")
    with pytest.raises(BadRequest, match=r"not a readable \.tar\.gz, \.tgz or \.zip file"):
        sources.extract(file, tmp_path, max_bytes=1000)


def test_pack_root_and_tree_checks(tmp_path: Path) -> None:
    first = make_pack(tmp_path / "one", "pack").parent  # one/pack/pack.yaml
    make_pack(first, "zzz")
    assert sources.find_root(first, "x") == first / "pack"
    second = tmp_path / "two"
    (second / "a").mkdir(parents=True)
    make_pack(second, "c")
    make_pack(second, "b")
    assert sources.find_root(second, "x") == second / "b"  # first-level directories in name order
    with pytest.raises(BadRequest, match=r"No pack\.yaml found"):
        sources.find_root(second / "a", "x")

    pack = make_pack(tmp_path / "links", "demo")
    (pack / "inside").symlink_to(pack / "actions")
    sources.check_tree(pack, max_bytes=10_000)
    (pack / "outside").symlink_to("/etc/passwd")
    with pytest.raises(BadRequest, match="link 'outside' points outside the pack"):
        sources.check_tree(pack, max_bytes=10_000)
    (pack / "outside").unlink()
    with pytest.raises(BadRequest, match="larger than 10 bytes"):
        sources.check_tree(pack, max_bytes=10)


def test_checksums_accept_the_directory_or_the_archive_hash(tmp_path: Path) -> None:
    pack = make_pack(tmp_path, "demo")
    archive = tmp_path / "demo.tgz"
    archive.write_bytes(tar_gz(pack))
    directory = checksum.directory_checksum(pack)
    assert checksum.matches(f"SHA256:{directory.upper()}", pack) == (True, f"sha256:{directory}")
    assert checksum.matches(f"sha256:{checksum.file_checksum(archive)}", pack, archive)[0]
    assert checksum.matches(f"sha512:{checksum.directory_checksum(pack, 'sha512')}", pack)[0]
    assert checksum.matches("sha256:" + "0" * 64, pack, archive) == (False, f"sha256:{directory}")
    # .git is not part of a pack's checksum.
    init_repo(pack)
    assert checksum.directory_checksum(pack) == directory
    with pytest.raises(BadRequest, match="Unsupported checksum algorithm 'crc32'"):
        checksum.parse_checksum("crc32:abcd")
    assert git(pack, "status", "--porcelain")  # untracked files: the repository really is there
