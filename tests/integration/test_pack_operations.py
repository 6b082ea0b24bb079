"""``/packs/download``, ``/packs/dependencies`` and ``/packs/build-envs`` (docs/api.md, docs/packs.md)."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.pack_sources import commit_all, init_repo, make_pack, sha256_of

PACKS = "/api/v1/packs"

# A runtime whose "environment" is a directory with one module, so building it needs no network.
NODELIKE = """ref: tools.nodelike
name: nodelike
execution_config:
  interpreter: {binary: node, file_extension: .js}
  environment:
    env_type: node_modules
    create_command: [mkdir, -p, "{env_dir}/node_modules/left-pad"]
"""


def has_manifest(directory: str) -> bool:
    return Path(directory, "pack.yaml").is_file()


async def test_download_fetches_each_source_into_its_own_directory(
    api: httpx.AsyncClient, tmp_path: Path
) -> None:
    repo = init_repo(tmp_path / "repo")
    pack = make_pack(repo, "demo", "1.2.0")
    commit = commit_all(repo, "one", tag="v1.2.0")
    response = await api.post(
        f"{PACKS}/download",
        json={
            "packs": [repo.as_uri(), str(tmp_path / "nowhere")],
            "destination_dir": "/ignored",
            "ref_spec": "v1.2.0",
        },
    )
    assert response.status_code == 200
    data = response.json()["data"]
    (downloaded,) = data["downloaded_packs"]
    assert (downloaded["pack_ref"], downloaded["pack_version"], downloaded["git_commit"]) == (
        "demo",
        "1.2.0",
        commit,
    )
    assert downloaded["source_type"] == "git" and downloaded["checksum"] == sha256_of(pack)
    assert has_manifest(downloaded["pack_path"])
    (failure,) = data["failed_packs"]
    assert failure["source"] == str(tmp_path / "nowhere") and "neither an existing path" in failure["error"]
    assert (data["total_count"], data["success_count"], data["failure_count"]) == (2, 1, 1)


async def test_dependencies_honour_version_constraints(api: httpx.AsyncClient, tmp_path: Path) -> None:
    assert (await api.post(PACKS, json={"ref": "utils", "label": "U", "version": "1.5.0"})).status_code == 201
    app = make_pack(tmp_path, "app", dependencies=("utils@^1.0", "aws@>=2.0.0"), extra='python: "3.8"\n')
    (app / "requirements.txt").write_text("six\n")
    old = make_pack(tmp_path, "old", dependencies=("utils@^2",))
    response = await api.post(f"{PACKS}/dependencies", json={"pack_paths": [str(app), str(old), "/nope"]})
    data = response.json()["data"]
    assert [
        (d["pack_ref"], d["version_spec"], d["required_by"], d["already_installed"])
        for d in data["dependencies"]
    ] == [
        ("utils", "^1.0", "app", True),
        ("aws", ">=2.0.0", "app", False),
        ("utils", "^2", "old", False),  # installed, but 1.5.0 does not meet ^2
    ]
    assert [d["pack_ref"] for d in data["missing_dependencies"]] == ["aws", "utils"]
    assert data["runtime_requirements"]["app"] == {
        "pack_ref": "app",
        "python": {"version": "3.8", "requirements_file": str(app / "requirements.txt")},
        "nodejs": None,
    }
    assert [(p["pack_ref"], p["dependency_count"]) for p in data["analyzed_packs"]] == [
        ("app", 2),
        ("old", 1),
    ]
    assert data["errors"] == [{"pack_path": "/nope", "error": "Pack directory does not exist: /nope"}]


async def test_build_envs_builds_where_workers_look(api: httpx.AsyncClient, tmp_path: Path) -> None:
    pack = make_pack(tmp_path, "tools")
    (pack / "runtimes").mkdir()
    (pack / "runtimes" / "nodelike.yaml").write_text(NODELIKE)
    (pack / "actions" / "run.yaml").write_text(
        "name: run\nrunner_type: tools.nodelike\nentry_point: run.js\n"
    )
    body = {"pack_paths": [str(pack)], "force_rebuild": True}
    response = await api.post(f"{PACKS}/build-envs", json=body)
    assert response.status_code == 200
    data = response.json()["data"]
    (built,) = data["built_environments"]
    node = built["environments"]["nodejs"]
    env_dir = Path(node["node_modules_path"]).parent
    assert env_dir.name == "nodelike" and env_dir.parent.name == "tools"
    assert node["package_count"] == 1 and node["dependencies_installed"] is False
    assert data["failed_environments"] == []
    assert (data["summary"]["nodejs_envs_built"], data["summary"]["python_envs_built"]) == (1, 0)

    skipped = (await api.post(f"{PACKS}/build-envs", json={**body, "skip_nodejs": True})).json()["data"]
    assert skipped["built_environments"][0]["environments"] == {}
