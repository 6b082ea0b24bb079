"""Client commands that never contact a server: config and profiles, checksums and index files,
local pack tests, workflow validation, and where global options may appear."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.main import get_command
from typer.testing import CliRunner

from attune.cli.commands import hoist_global_options
from attune.cli.main import app
from attune.cli.pack_index import directory_checksum, version_key
from attune.cli.state import State


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def run(home: Path, *args: str, input: str | None = None) -> Any:
    env = {
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "NO_COLOR": "1",
        "ATTUNE_PROFILE": "",
        "ATTUNE_API_URL": "",
    }
    return CliRunner().invoke(app, list(args), env=env, input=input, obj=State())


def config_of(home: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((home / ".config" / "attune" / "config.yaml").read_text())
    return data


def test_first_use_writes_the_default_config(home: Path) -> None:
    result = run(home, "config", "path")
    assert result.exit_code == 0
    assert result.stdout.strip() == str(home / ".config" / "attune" / "config.yaml")
    assert config_of(home)["profiles"]["default"]["api_url"] == "http://localhost:8080"
    assert json.loads(run(home, "--json", "config", "profiles").stdout) == [
        {"name": "default", "current": True}
    ]


def test_config_get_set_and_unknown_keys(home: Path) -> None:
    assert run(home, "config", "set", "api_url", "http://a.example:1").exit_code == 0
    assert run(home, "config", "get", "api_url").stdout.strip() == "http://a.example:1"
    assert run(home, "config", "get", "auth_token").stdout.strip() == "(not set)"
    unknown = run(home, "config", "get", "colour")
    assert unknown.exit_code == 1 and "Unknown config key: colour" in unknown.stderr
    # The stored output preference is applied (docs/cli.md precedence).
    assert run(home, "config", "set", "default_output_format", "json").exit_code == 0
    assert json.loads(run(home, "config", "current").stdout) == {"current_profile": "default"}
    assert run(home, "--output", "table", "config", "current").stdout.strip() == "default"


def test_profiles_add_use_remove(home: Path) -> None:
    assert (
        run(home, "config", "add-profile", "prod", "-a", "https://prod.example", "-d", "Production").exit_code
        == 0
    )
    assert run(home, "config", "use", "prod").exit_code == 0
    assert config_of(home)["current_profile"] == "prod"
    active = run(home, "config", "remove-profile", "prod")
    assert active.exit_code == 1 and "Cannot remove active profile" in active.stderr
    default = run(home, "config", "remove-profile", "default")
    assert default.exit_code == 1 and "Cannot remove the default profile" in default.stderr
    run(home, "config", "use", "default")
    assert run(home, "config", "remove-profile", "prod").exit_code == 0
    assert "prod" not in config_of(home)["profiles"]
    missing = run(home, "config", "use", "nope")
    assert missing.exit_code == 1 and "Profile 'nope' does not exist" in missing.stderr


def test_unparsable_config_is_an_error(home: Path) -> None:
    path = home / ".config" / "attune" / "config.yaml"
    path.parent.mkdir(parents=True)
    path.write_text("profiles: [unclosed\n")
    result = run(home, "config", "list")
    assert result.exit_code == 1
    assert "Failed to parse config file" in result.stderr


def test_global_options_are_moved_only_when_the_command_does_not_own_them() -> None:
    root = get_command(app)
    assert hoist_global_options(root, ["pack", "list", "-j"]) == ["-j", "pack", "list"]  # type: ignore[arg-type]
    assert hoist_global_options(root, ["pack", "uninstall", "x", "-y"]) == ["pack", "uninstall", "x", "-y"]  # type: ignore[arg-type]
    assert hoist_global_options(root, ["pack", "test", "p", "-v"]) == ["pack", "test", "p", "-v"]  # type: ignore[arg-type]
    assert hoist_global_options(root, ["run", "a.b", "--profile", "x", "k=v"]) == [  # type: ignore[arg-type]
        "--profile",
        "x",
        "run",
        "a.b",
        "k=v",
    ]


def make_pack(root: Path, version: str = "1.0.0") -> Path:
    pack = root / "mypack"
    (pack / "actions").mkdir(parents=True)
    (pack / "pack.yaml").write_text(
        yaml.safe_dump({"ref": "mypack", "label": "My pack", "version": version, "keywords": ["demo"]})
    )
    (pack / "actions" / "a.yaml").write_text("ref: mypack.a\n")
    return pack


def test_checksum_of_a_directory_and_a_file(home: Path, tmp_path: Path) -> None:
    pack = make_pack(tmp_path)
    expected = hashlib.sha256()
    for rel in ("actions/a.yaml", "pack.yaml"):
        expected.update(rel.encode())
        expected.update((pack / rel).read_bytes())
    assert directory_checksum(pack) == expected.hexdigest()
    data = json.loads(run(home, "--output", "json", "pack", "checksum", str(pack)).stdout)
    assert data["checksum"] == f"sha256:{expected.hexdigest()}"
    stub = json.loads(run(home, "--output", "json", "pack", "checksum", str(pack), "--json").stdout)
    assert stub["type"] == "git" and stub["checksum"] == data["checksum"]
    missing = run(home, "pack", "checksum", str(tmp_path / "nope"))
    assert missing.exit_code == 1 and "Path does not exist" in missing.stderr


def test_index_entry_update_and_merge(home: Path, tmp_path: Path) -> None:
    pack = make_pack(tmp_path)
    entry = json.loads(
        run(home, "--json", "pack", "index-entry", str(pack), "-g", "https://git/x.git").stdout
    )
    assert entry["ref"] == "mypack" and entry["license"] == "UNLICENSED"
    assert entry["install_sources"][0]["ref"] == "v1.0.0"
    assert entry["contents"]["actions"] == 1

    index = tmp_path / "index.json"
    index.write_text(json.dumps({"packs": []}))
    assert run(home, "pack", "index-update", str(pack), "-i", str(index)).exit_code == 0
    dup = run(home, "pack", "index-update", str(pack), "-i", str(index))
    assert dup.exit_code == 1 and "already exists in index" in dup.stderr
    (pack / "pack.yaml").write_text(yaml.safe_dump({"ref": "mypack", "version": "1.10.0"}))
    updated = json.loads(
        run(home, "--json", "pack", "index-update", str(pack), "-i", str(index), "-u").stdout
    )
    assert updated["action"] == "updated"

    other = tmp_path / "other.json"
    other.write_text(
        json.dumps({"packs": [{"ref": "mypack", "version": "1.9.0"}, {"ref": "b", "version": "1"}]})
    )
    out = tmp_path / "merged.json"
    summary = json.loads(
        run(home, "--json", "pack", "index-merge", str(index), str(other), "-o", str(out)).stdout
    )
    assert summary["unique_packs"] == 2 and summary["duplicates_resolved"] == 1
    merged = {p["ref"]: p["version"] for p in json.loads(out.read_text())["packs"]}
    assert merged["mypack"] == "1.10.0"  # semver, not string comparison
    again = run(home, "pack", "index-merge", str(index), "-o", str(out))
    assert again.exit_code == 1 and "already exists" in again.stderr


def test_version_key_orders_semver() -> None:
    assert version_key("1.10.0") > version_key("1.9.9")
    assert version_key("2.0.0") > version_key("2.0.0-rc.1")


def test_pack_test_runs_the_declared_runners(home: Path, tmp_path: Path) -> None:
    pack = make_pack(tmp_path)
    (pack / "tests").mkdir()
    (pack / "tests" / "ok.sh").write_text("echo 'Total Tests: 2'\necho 'Passed: 2'\necho 'Failed: 0'\n")
    (pack / "tests" / "bad.sh").write_text("echo broken >&2\nexit 3\n")
    manifest = yaml.safe_load((pack / "pack.yaml").read_text())
    manifest["testing"] = {
        "enabled": True,
        "runners": {"shell": {"type": "script", "entry_point": "tests/ok.sh"}},
    }
    (pack / "pack.yaml").write_text(yaml.safe_dump(manifest))
    passed = run(home, "pack", "test", str(pack))
    assert passed.exit_code == 0, passed.output
    assert "All tests passed: 2/2" in passed.stdout

    manifest["testing"]["runners"]["broken"] = {"type": "script", "entry_point": "tests/bad.sh"}
    (pack / "pack.yaml").write_text(yaml.safe_dump(manifest))
    failed = run(home, "--json", "pack", "test", str(pack))
    assert failed.exit_code == 1  # also in json mode (docs/cli.md gap)
    assert json.loads(failed.stdout)["status"] == "failed"

    manifest["testing"]["enabled"] = False
    (pack / "pack.yaml").write_text(yaml.safe_dump(manifest))
    disabled = run(home, "pack", "test", str(pack))
    assert disabled.exit_code == 0 and "Testing is disabled" in disabled.stderr


WORKFLOW = {
    "ref": "mypack.deploy",
    "label": "Deploy",
    "version": "1.0.0",
    "tasks": [
        {"name": "build", "action": "core.echo", "next": [{"when": "{{ succeeded() }}", "do": ["ship"]}]},
        {"name": "ship", "action": "core.noop"},
    ],
}


def test_workflow_validate_reports_each_problem(home: Path, tmp_path: Path) -> None:
    good = tmp_path / "deploy.yaml"
    good.write_text(yaml.safe_dump(WORKFLOW))
    result = run(home, "workflow", "validate", str(good))
    assert result.exit_code == 0, result.output
    assert "valid (mypack.deploy)" in result.stdout

    broken = dict(
        WORKFLOW,
        tasks=[*WORKFLOW["tasks"], {"name": "vars", "action": "nodot", "next": [{"do": ["nowhere"]}]}],
    )  # type: ignore[list-item]
    bad = tmp_path / "deploy2.yaml"
    bad.write_text(yaml.safe_dump(broken))
    report = run(home, "--json", "workflow", "validate", str(bad))
    assert report.exit_code == 1
    errors = json.loads(report.stdout)[0]["errors"]
    joined = "\n".join(errors)
    assert "reserved word" in joined
    assert "invalid action ref 'nodot'" in joined
    assert "unknown task 'nowhere'" in joined
    assert "does not end with the file name" in joined
