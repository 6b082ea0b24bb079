"""Pack installation and archive upload through the HTTP API (docs/api.md; docs/packs.md): install from a
local directory checks dependencies; an upload registers the pack and stores its files, refuses unsafe
or unreadable archives and leaves nothing behind when it fails. The pack helpers are test_packs'.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import httpx

from attune.db import models
from attune.packs.install.checksum import directory_checksum
from attune.platform import Platform
from tests.integration.test_packs import (
    PACKS,
    names,
    register,
    rows,
    tar_gz,
    write_pack,
)


async def test_install_from_local_directory_copies_into_the_data_dir(
    api: httpx.AsyncClient, platform: Platform, packs_dir: Path, tmp_path: Path, user: models.Identity
) -> None:
    installed = platform.settings.install_dir
    source = write_pack(tmp_path / "src")
    response = await api.post(f"{PACKS}/install", json={"source": str(source), "skip_tests": True})
    assert response.status_code == 200
    data = response.json()["data"]
    assert (data["pack"]["ref"], data["test_result"], data["tests_skipped"]) == ("demo", None, True)
    assert (installed / "demo" / "actions" / "hello.sh").is_file()
    assert not (packs_dir / "demo").exists()  # never into the packs folder of a checkout
    (pack,) = await rows(platform, models.Pack)
    assert (pack.source_type, pack.installation_method, pack.installed_by) == (
        "local_directory",
        "api",
        user.id,
    )
    assert pack.storage_path == str((installed / "demo").absolute())

    # Installing again replaces the copy (force is implied) and keeps the pack id.
    again = await api.post(f"{PACKS}/install", json={"source": str(source)})
    assert again.status_code == 200 and again.json()["data"]["pack"]["id"] == data["pack"]["id"]


async def test_install_checks_pack_dependencies(api: httpx.AsyncClient, tmp_path: Path) -> None:
    source = write_pack(tmp_path, extra="dependencies: [missingpack@^1.0]\n")
    response = await api.post(f"{PACKS}/install", json={"source": str(source)})
    assert response.status_code == 400
    assert response.json()["error"] == (
        "Pack dependency validation failed:\n"
        "  - Pack 'missingpack' (required by 'demo') is not installed and no pack registry is configured"
    )
    skipped = await api.post(f"{PACKS}/install", json={"source": str(source), "skip_deps": True})
    assert skipped.status_code == 200


async def upload(api: httpx.AsyncClient, content: bytes, field: str = "file", **form: str) -> httpx.Response:
    return await api.post(
        f"{PACKS}/upload", files={field: ("pack.tar.gz", content, "application/gzip")}, data=form
    )


async def test_upload_accepts_the_pack_field_too(api: httpx.AsyncClient, tmp_path: Path) -> None:
    response = await upload(api, tar_gz(write_pack(tmp_path / "build"), top_level=None), field="pack")
    assert response.status_code == 201, response.text
    assert response.json()["data"]["ref"] == "demo"
    neither = await upload(api, b"x", field="archive")
    assert neither.status_code == 400
    assert "'file'" in neither.json()["error"]


async def test_upload_registers_pack_and_stores_files(
    api: httpx.AsyncClient, platform: Platform, packs_dir: Path, tmp_path: Path, user: models.Identity
) -> None:
    installed = platform.settings.install_dir
    content = tar_gz(write_pack(tmp_path / "build"), top_level="demo-1.0.0")
    response = await upload(api, content)
    assert response.status_code == 201
    assert response.json()["message"] == "Pack uploaded and registered successfully"
    assert response.json()["data"]["ref"] == "demo"
    # Unpacked into the data dir, never into the packs folder of a source checkout.
    assert (installed / "demo" / "pack.yaml").is_file()
    assert names(packs_dir) == ["core"]
    assert [n for n in names(installed) if n.startswith(".")] == []  # staging cleaned up
    (pack,) = await rows(platform, models.Pack)
    assert (pack.source_type, pack.installation_method, pack.installed_by) == (
        "local_archive",
        "api",
        user.id,
    )
    assert pack.storage_path == str((installed / "demo").absolute()) and pack.installed_at is not None
    # The directory checksum of the installed pack (docs/packs.md), whatever the archive looked like.
    assert pack.checksum == directory_checksum(installed / "demo")
    assert [a.ref for a in await rows(platform, models.Action)] == ["demo.hello"]


async def test_upload_existing_pack_needs_force(
    api: httpx.AsyncClient, platform: Platform, tmp_path: Path
) -> None:
    source = write_pack(tmp_path / "build")
    assert (await upload(api, tar_gz(source, top_level=None))).status_code == 201
    first_id = (await rows(platform, models.Action))[0].id

    (source / "actions" / "extra.yaml").write_text("name: extra\nentry_point: extra.sh\n")
    content = tar_gz(source, top_level=None)
    conflict = await upload(api, content)
    assert conflict.status_code == 409
    assert conflict.json()["error"] == "Pack 'demo' already exists. Use force=true to reinstall."

    replaced = await upload(api, content, force="true", skip_tests="true")
    assert replaced.status_code == 201
    assert [(a.ref, a.id == first_id) for a in await rows(platform, models.Action)] == [
        ("demo.extra", False),
        ("demo.hello", True),
    ]


def _unsafe_archive(kind: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        manifest = b'ref: evil\nlabel: Evil\nversion: "1.0.0"\n'
        info = tarfile.TarInfo("pack.yaml")
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest))
        if kind == "dotdot":
            info = tarfile.TarInfo("../escaped.txt")
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
        elif kind == "absolute":
            info = tarfile.TarInfo("/tmp/attune-escaped.txt")
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
        elif kind == "symlink":
            info = tarfile.TarInfo("actions")
            info.type = tarfile.SYMTYPE
            info.linkname = "../../../etc"
            tar.addfile(info)
        elif kind == "device":
            info = tarfile.TarInfo("null")
            info.type = tarfile.CHRTYPE
            tar.addfile(info)
    return buffer.getvalue()


async def test_upload_rejects_unsafe_archives(
    api: httpx.AsyncClient, platform: Platform, packs_dir: Path
) -> None:
    for kind, message in [
        ("dotdot", "Unsafe pack archive: path '../escaped.txt' leaves the archive"),
        ("absolute", "Unsafe pack archive: absolute path '/tmp/attune-escaped.txt'"),
        ("symlink", "Unsafe pack archive: link 'actions' points outside the archive"),
        ("device", "Unsafe pack archive: 'null' is a device or FIFO"),
    ]:
        response = await upload(api, _unsafe_archive(kind))
        assert response.status_code == 400
        assert response.json() == {"error": message, "code": "BAD_REQUEST"}
    assert await rows(platform, models.Pack) == []
    assert names(packs_dir) == ["core"]
    assert not (packs_dir.parent / "escaped.txt").exists()


async def test_failed_reinstall_restores_the_previous_files(
    api: httpx.AsyncClient, platform: Platform, packs_dir: Path, tmp_path: Path
) -> None:
    alpha = write_pack(tmp_path / "v1", ref="alpha")
    (alpha / "runtimes").mkdir()
    (alpha / "runtimes" / "rt.yaml").write_text("ref: alpha.rt\nname: Alpha\n")
    assert (await upload(api, tar_gz(alpha, top_level=None))).status_code == 201
    # Another pack's action runs on alpha.rt, so alpha can neither drop that runtime nor be deleted.
    assert (await register(api, write_pack(tmp_path, ref="beta", runner="alpha.rt"))).status_code == 201

    (alpha / "runtimes" / "rt.yaml").unlink()
    response = await upload(api, tar_gz(alpha, top_level=None), force="true")
    assert response.status_code == 422
    assert response.json()["code"] == "UNPROCESSABLE_ENTITY"
    installed = platform.settings.install_dir
    assert (installed / "alpha" / "runtimes" / "rt.yaml").is_file()
    assert [n for n in names(installed) if n.startswith(".")] == []
    assert [r.ref for r in await rows(platform, models.Runtime)] == ["alpha.rt"]

    blocked = await api.delete(f"{PACKS}/alpha")
    assert blocked.status_code == 422
    assert blocked.json()["error"].startswith("Referenced entity does not exist")
    assert (installed / "alpha" / "pack.yaml").is_file()


async def test_upload_rejects_unreadable_archive_and_missing_manifest(
    api: httpx.AsyncClient, tmp_path: Path
) -> None:
    garbage = await upload(api, b"this is not a tarball")
    assert garbage.status_code == 400
    assert garbage.json()["error"] == "Invalid pack archive: not a readable .tar.gz, .tgz or .zip file"

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    no_manifest = await upload(api, tar_gz(tmp_path, top_level=None))
    assert no_manifest.status_code == 400
    assert "No pack.yaml found in" in no_manifest.json()["error"]


async def test_upload_of_malformed_pack_leaves_nothing_behind(
    api: httpx.AsyncClient, platform: Platform, packs_dir: Path, tmp_path: Path
) -> None:
    source = write_pack(tmp_path / "build")
    (source / "actions" / "hello.yaml").write_text("name: hello\nparameter_delivery: carrier-pigeon\n")
    response = await upload(api, tar_gz(source, top_level="demo"))
    assert response.status_code == 422
    assert "actions/hello.yaml" in response.json()["error"]
    assert await rows(platform, models.Pack) == []
    assert names(packs_dir) == ["core"]


async def test_upload_requires_authentication(client: httpx.AsyncClient) -> None:
    response = await client.post(f"{PACKS}/upload", files={"file": ("p.tar.gz", b"x", "application/gzip")})
    assert response.status_code == 401
