"""The UI hides what the signed-in identity may not do, and shows a refusal (docs/web-ui.md;
the permission contract of ``GET /api/v1/identities/{id}/permissions``)."""

from __future__ import annotations

import json
import re
import uuid

import pytest
from fastapi.routing import APIRoute
from playwright.sync_api import Page, Route, expect

from attune.api.routes import ROUTERS
from attune.testing.deployment import Deployment
from tests.browser.conftest import api, login

pytestmark = pytest.mark.slow

PERMISSIONS_ROUTE = re.compile(r"^/api/v1/identities/\{[^}]+\}/permissions$")
HAS_PERMISSION_MODEL = any(
    isinstance(route, APIRoute) and PERMISSIONS_ROUTE.match(route.path)
    for router in ROUTERS
    for route in router.routes
)

#: Pages with Create/Run/Delete controls for an identity that may use them.
GUARDED = [
    ("/packs/core", ["Edit", "Upgrade", "Uninstall"]),
    ("/packs", ["New Pack ▾"]),
    ("/actions/core.echo", ["Execute"]),
    ("/actions", ["+ Workflow"]),
    ("/rules", ["+ New"]),
    ("/triggers", ["+ Create Trigger"]),
    ("/keys", ["+ New Key"]),
]


def _assert_no_controls(page: Page) -> None:
    for path, names in GUARDED:
        page.goto(path)
        page.wait_for_load_state("networkidle")
        for name in names:
            expect(page.get_by_role("button", name=name, exact=True)).to_have_count(0)
            expect(page.get_by_role("link", name=name, exact=True)).to_have_count(0)


def _viewer_grants(route: Route) -> None:
    body = {
        "data": {
            "identity_id": 1,
            "login": "test@attune.local",
            "is_admin": False,
            "permission_sets": ["core.viewer"],
            "grants": [{"resource": "*", "actions": ["read"], "constraints": {}}],
        }
    }
    route.fulfill(status=200, content_type="application/json", body=json.dumps(body))


def test_the_ui_follows_the_permission_contract_and_shows_refusals(page: Page) -> None:
    login(page, "/actions/core.echo")
    expect(page.get_by_role("button", name="Execute", exact=True)).to_be_visible()  # an admin may
    page.route("**/api/v1/identities/*/permissions", _viewer_grants)
    _assert_no_controls(page)
    page.unroute("**/api/v1/identities/*/permissions")

    # A call refused anyway shows the server's message in an amber "Access Denied" box.
    page.route(
        "**/api/v1/executions/execute",
        lambda route: route.fulfill(
            status=403,
            content_type="application/json",
            body=json.dumps({"error": "You may not execute core.echo", "code": "FORBIDDEN"}),
        ),
    )
    page.goto("/actions/core.echo")
    page.get_by_role("button", name="Execute", exact=True).click()
    page.get_by_role("dialog").get_by_role("button", name="Execute").click()
    alert = page.get_by_role("dialog").get_by_role("alert")
    expect(alert).to_contain_text("Access Denied")
    expect(alert).to_contain_text("You may not execute core.echo")


def test_the_permission_model_is_in_this_build() -> None:
    assert HAS_PERMISSION_MODEL


def test_a_viewer_identity_sees_no_create_run_or_delete_buttons(page: Page, server: Deployment) -> None:
    credentials = {"login": f"viewer-{uuid.uuid4().hex[:6]}", "password": "Viewer-Passw0rd!"}
    identity = api(server, "POST", "/api/v1/identities", {**credentials, "display_name": "Viewer"})
    api(
        server,
        "POST",
        "/api/v1/permissions/assignments",
        {"identity_id": identity["id"], "permission_set_ref": "core.viewer"},
    )
    login(page, "/", credentials)
    expect(page.get_by_text("Welcome back")).to_be_visible()
    _assert_no_controls(page)
