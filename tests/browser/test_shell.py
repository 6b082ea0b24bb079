"""Login, token refresh, the dashboard, and the layout at 1280x800 (docs/web-ui.md)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from attune.testing.deployment import Deployment
from tests.browser.conftest import login, no_horizontal_scroll, screenshot

pytestmark = pytest.mark.slow


def test_bad_login_shows_the_server_message_and_a_deep_link_survives_login(page: Page) -> None:
    page.goto("/executions?status=completed")
    page.wait_for_url("**/login")
    page.fill("input[name=login]", "test@attune.local")
    page.fill("input[name=password]", "wrong-password")
    page.click("button[type=submit]")
    expect(page.get_by_role("alert")).to_contain_text("Invalid")
    page.fill("input[name=password]", "TestPass123!")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/executions\?status=completed$"))
    expect(page.get_by_role("heading", name="Executions")).to_be_visible()


def test_an_expired_access_token_refreshes_silently_and_a_bad_refresh_token_signs_out(page: Page) -> None:
    login(page)
    expect(page.get_by_text("Welcome back")).to_be_visible()
    page.evaluate("localStorage.setItem('access_token', 'expired.or.garbage')")
    page.goto("/packs")
    expect(page.locator("[data-ref=core]")).to_be_visible()
    assert page.evaluate("localStorage.getItem('access_token')") != "expired.or.garbage"
    page.evaluate("localStorage.setItem('access_token', 'bad'); localStorage.setItem('refresh_token', 'bad')")
    page.goto("/rules")
    page.wait_for_url("**/login")
    page.wait_for_load_state("networkidle")
    expect(page.locator("input[name=login]")).to_be_visible()
    assert page.evaluate("localStorage.getItem('access_token')") is None


def test_dashboard_cards_link_ranges_query_the_analytics_and_live_badge_appears(
    page: Page, server: Deployment
) -> None:
    server.post("/api/v1/executions/execute", {"action_ref": "core.echo", "parameters": {"message": "hi"}})
    login(page)
    expect(page.get_by_test_id("live-badge")).to_be_visible()
    expect(page.get_by_test_id("card-Total Packs")).to_have_text(re.compile(r"^\d+$"))
    with page.expect_request(lambda r: "/api/v1/analytics/dashboard?hours=168" in r.url):
        page.get_by_role("button", name="7d").click()
    with page.expect_request(lambda r: "/api/v1/analytics/dashboard?hours=6" in r.url):
        page.get_by_role("button", name="6h").click()
    page.get_by_role("button", name="24h").click()
    expect(page.get_by_test_id("stat-Executions")).not_to_have_text("0")
    page.wait_for_timeout(300)
    screenshot(page, "dashboard")
    page.locator("[data-card='Total Packs']").click()
    page.wait_for_url("**/packs")
    page.go_back()
    page.locator("[data-card='Running Executions']").click()
    page.wait_for_url("**/executions?status=running")


PAGES = [
    "/",
    "/packs",
    "/packs/core",
    "/packs/new",
    "/actions",
    "/actions/core.echo",
    "/actions/workflows/new",
    "/rules",
    "/rules/new",
    "/triggers",
    "/triggers/core.intervaltimer",
    "/sensors",
    "/executions",
    "/events",
    "/enforcements",
    "/keys",
    "/inquiries",
]


def test_every_page_fits_1280x800_without_horizontal_scrolling(page: Page) -> None:
    login(page)
    for path in PAGES:
        page.goto(path)
        page.wait_for_load_state("networkidle")
        no_horizontal_scroll(page)
