"""Packs: create with a schema and config, register, install (docs/web-ui.md)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from attune.testing.deployment import Deployment
from tests.browser.conftest import TEST_PACK, login

pytestmark = pytest.mark.slow


def _retarget(pack: Path, old: str, new: str) -> None:
    """Rename a copied pack: its ref and every component ref."""
    for path in pack.rglob("*.yaml"):
        path.write_text(
            path.read_text().replace(f"ref: {old}\n", f"ref: {new}\n").replace(f"{old}.", f"{new}.")
        )


def _git(repo: Path, *args: str) -> None:
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@x",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@x",
    }
    subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, env={**os.environ, **env}
    )


def api_get_pack(page: Page) -> dict[str, object]:
    """The pack as the server stored it (the form sends `dependencies`, not `runtime_deps`)."""
    body = page.evaluate(
        "fetch('/api/v1/packs/deploy_tools', {headers: {Authorization: "
        "'Bearer ' + localStorage.getItem('access_token')}}).then(r => r.json())"
    )
    data = body["data"]
    assert isinstance(data, dict)
    return data


SCHEMA = {
    "region": {"type": "string", "default": "eu-west-1", "description": "Where to deploy"},
    "replicas": {"type": "integer", "minimum": 1, "maximum": 9},
}


def test_create_a_pack_with_a_schema_round_tripped_through_raw_json_and_config_values(page: Page) -> None:
    login(page, "/packs/new")
    page.fill("input[name=label]", "Deploy Tools")
    page.locator("input[name=label]").blur()
    expect(page.locator("input[name=ref]")).to_have_value("deploy_tools")
    builder = page.get_by_test_id("schema-builder")
    builder.get_by_role("button", name="Raw JSON").click()
    builder.get_by_label("Schema JSON").fill(json.dumps(SCHEMA))
    builder.get_by_role("button", name="Visual Editor").click()
    expect(builder.locator("[data-property=region]")).to_be_visible()
    expect(builder.locator("[data-property=replicas]")).to_be_visible()
    builder.get_by_role("button", name="Raw JSON").click()
    assert json.loads(builder.get_by_label("Schema JSON").input_value()) == SCHEMA
    builder.get_by_label("Schema JSON").fill("[1, 2]")
    expect(builder.get_by_text("Schema must be a JSON object")).to_be_visible()
    builder.get_by_label("Schema JSON").fill(json.dumps(SCHEMA))
    page.fill("input[name=dependencies]", "core")
    page.locator("[data-param=replicas] input").fill("3")
    page.get_by_role("button", name="Create Pack").click()
    page.wait_for_url("**/packs/deploy_tools")
    config = page.get_by_test_id("pack-config")
    expect(config.locator("tr", has_text="replicas")).to_contain_text("3")
    expect(config.locator("tr", has_text="region")).to_contain_text("eu-west-1")
    expect(page.get_by_text("Dependencies")).to_be_visible()
    assert api_get_pack(page)["dependencies"] == ["core"]


def test_register_a_pack_with_skip_tests_then_install_from_git_with_a_ref(
    page: Page, server: Deployment
) -> None:
    target = server.workdir / "regpack"
    shutil.copytree(TEST_PACK, target)
    _retarget(target, "uitest", "regpack")
    login(page, "/packs")
    page.get_by_role("button", name="New Pack ▾").click()
    page.get_by_role("button", name="Register from Filesystem").click()
    page.wait_for_url("**/packs/register")
    page.fill("input[name=path]", str(target))
    page.check("input[name=skip_tests]")
    page.get_by_role("button", name="Register").click()
    expect(page.get_by_role("status")).to_contain_text(
        "Pack 'UI Test Pack' registered successfully! Tests were skipped."
    )
    page.wait_for_url("**/packs/regpack")
    tests = page.get_by_test_id("pack-tests")
    expect(tests).to_contain_text("No test runs yet.")
    page.get_by_role("button", name="Run Tests").click()
    expect(tests.get_by_role("alert")).to_contain_text("test")  # the server's reason, e.g. no configuration

    # Install from a git repository at a tag: the tag's version is installed, not the branch head.
    repo = server.workdir / "gitpack-src"
    shutil.copytree(target, repo)
    _retarget(repo, "regpack", "gitpack")
    manifest = repo / "pack.yaml"
    manifest.write_text(manifest.read_text().replace('version: "1.0.0"', 'version: "1.2.0"'))
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "v1.2.0")
    _git(repo, "tag", "v1.2.0")
    manifest.write_text(manifest.read_text().replace('version: "1.2.0"', 'version: "2.0.0"'))
    _git(repo, "commit", "-q", "-am", "v2")
    page.goto("/packs/install")
    page.fill("input[name=path]", f"file://{repo}")
    page.fill("input[name=ref_spec]", "v1.2.0")
    page.check("input[name=skip_tests]")
    with page.expect_request(lambda r: "/api/v1/packs/install?" in r.url) as request:
        page.get_by_role("button", name="Install").click()
    assert request.value.post_data_json["ref_spec"] == "v1.2.0"
    expect(page.get_by_role("status")).to_contain_text("installed successfully", timeout=30_000)
    page.wait_for_url("**/packs/gitpack")
    expect(page.get_by_text("1.2.0", exact=True)).to_be_visible()


def test_install_upgrade_and_uninstall_a_git_pack_with_live_progress(page: Page, server: Deployment) -> None:
    """Issue #17: the install page and the pack page show the streamed stages, then the outcome."""
    repo = server.workdir / "livepack-src"
    shutil.copytree(TEST_PACK, repo)
    _retarget(repo, "uitest", "livepack")
    manifest = repo / "pack.yaml"
    manifest.write_text(manifest.read_text().replace('version: "1.0.0"', 'version: "1.1.0"'))
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "v1.1.0")
    _git(repo, "tag", "v1.1.0")
    manifest.write_text(manifest.read_text().replace('version: "1.1.0"', 'version: "1.3.0"'))
    _git(repo, "commit", "-q", "-am", "v1.3.0")

    login(page, "/packs/install")
    # A failing install ends the stream with an error line, shown like any refused call.
    page.fill("input[name=path]", f"file://{repo}-missing")
    page.get_by_role("button", name="Install").click()
    expect(page.get_by_role("alert")).to_contain_text("livepack-src-missing", timeout=30_000)
    page.fill("input[name=path]", f"file://{repo}")
    page.fill("input[name=ref_spec]", "v1.1.0")
    page.check("input[name=skip_tests]")
    page.get_by_role("button", name="Install").click()
    progress = page.get_by_test_id("install-progress")
    expect(progress.locator("[data-stage=fetch]")).to_contain_text("Cloning", timeout=30_000)
    expect(page.get_by_role("status")).to_contain_text("v1.1.0 installed successfully", timeout=60_000)
    expect(progress.locator("[data-stage=register]")).to_contain_text("Activating livepack 1.1.0")
    page.wait_for_url("**/packs/livepack")

    # Upgrade to the branch head from the pack page: confirmation, stages, outcome.
    page.get_by_role("button", name="Upgrade", exact=True).click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Installed version: 1.1.0")
    dialog.locator("input[name=upgrade_ref_spec]").fill("main")
    dialog.locator("input[name=upgrade_skip_tests]").check()
    dialog.get_by_role("button", name="Upgrade", exact=True).click()
    expect(dialog.get_by_role("status")).to_contain_text(
        "upgraded from v1.1.0 to v1.3.0 successfully", timeout=60_000
    )
    expect(dialog.get_by_test_id("install-progress").locator("[data-stage=fetch]")).to_contain_text("Cloning")
    dialog.get_by_text("Close", exact=True).click()
    expect(page.get_by_text("1.3.0", exact=True)).to_be_visible()

    page.get_by_role("button", name="Uninstall", exact=True).click()
    page.get_by_role("dialog").get_by_role("button", name="Uninstall").click()
    page.wait_for_url(lambda url: url.endswith("/packs"))
    status = page.evaluate(
        "fetch('/api/v1/packs/livepack', {headers: {Authorization: "
        "'Bearer ' + localStorage.getItem('access_token')}}).then(r => r.status)"
    )
    assert status == 404


def test_pack_controls_hidden_without_packs_manage(page: Page) -> None:
    """Upgrade and Uninstall need packs:manage; a read+update identity sees Edit only."""
    grants = {
        "data": {
            "identity_id": 1,
            "login": "test@attune.local",
            "is_admin": False,
            "permission_sets": ["custom"],
            "grants": [{"resource": "packs", "actions": ["read", "update"], "constraints": {}}],
        }
    }
    page.route(
        "**/api/v1/identities/*/permissions",
        lambda route: route.fulfill(status=200, content_type="application/json", body=json.dumps(grants)),
    )
    login(page, "/packs/uitest")
    expect(page.get_by_role("link", name="Edit", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Upgrade", exact=True)).to_have_count(0)
    expect(page.get_by_role("button", name="Uninstall", exact=True)).to_have_count(0)
