"""Execute an action, watch it live, re-run it; the execution list (docs/web-ui.md)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from attune.testing.deployment import Deployment
from tests.browser.conftest import api, login, screenshot

pytestmark = pytest.mark.slow


def test_execute_with_a_schema_form_then_watch_it_finish_live_and_rerun_prefilled(page: Page) -> None:
    login(page, "/actions/uitest.greet")
    page.get_by_role("button", name="Execute").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("button", name="Execute").click()
    expect(dialog.locator("[data-error-for=name]")).to_have_text("This field is required")
    dialog.locator("[data-param=name] input").fill("Ada")
    expect(dialog.locator("[data-param=mode] select")).to_have_value("quiet")  # the default
    dialog.locator("[data-param=mode] select").select_option("loud")
    assert dialog.locator("[data-param=token] input").get_attribute("type") == "password"
    dialog.locator("[data-param=token] input").fill("s3cret")
    dialog.get_by_label("Environment variable name").fill("GREETING_SUFFIX")
    dialog.get_by_label("Environment variable value").fill("!!")
    dialog.get_by_role("button", name="Execute").click()
    page.wait_for_url(re.compile(r"/executions/\d+$"))
    expect(page.get_by_test_id("live-badge")).to_be_visible()
    expect(page.locator("h1 [data-status]")).to_have_attribute("data-status", "completed", timeout=20_000)
    expect(page.get_by_test_id("stdout")).to_contain_text("HELLO ADA")
    expect(page.get_by_test_id("stdout")).to_contain_text("suffix=!!")
    expect(page.get_by_test_id("stderr")).to_contain_text("token given")
    timeline = page.get_by_test_id("timeline")
    expect(timeline).to_contain_text("requested")
    expect(timeline).to_contain_text("completed")
    screenshot(page, "execution-detail")

    page.get_by_role("button", name="Re-Run").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.locator("[data-param=name] input")).to_have_value("Ada")
    expect(dialog.locator("[data-param=mode] select")).to_have_value("loud")
    first = page.url
    dialog.get_by_role("button", name="Execute").click()
    page.wait_for_url(lambda url: url != first and re.search(r"/executions/\d+$", url) is not None)
    expect(page.locator("h1 [data-status]")).to_have_attribute("data-status", "completed", timeout=20_000)


def _run(server: Deployment, action: str, parameters: dict[str, object]) -> int:
    return int(
        api(server, "POST", "/api/v1/executions/execute", {"action_ref": action, "parameters": parameters})[
            "id"
        ]
    )


def test_execution_list_filters_seed_from_the_url_preview_and_by_workflow(
    page: Page, server: Deployment
) -> None:
    echo = _run(server, "core.echo", {"message": "list"})
    failing = _run(server, "core.http_request", {"url": "http://127.0.0.1:1/nothing", "timeout": 1})
    flow = _run(server, "uitest.approval", {})
    server.wait_execution(echo, {"completed"})
    server.wait_execution(failing, {"failed", "completed"})
    login(page, "/executions?action_ref=core.echo")
    table = page.get_by_test_id("executions-table")
    expect(page.get_by_label("Action filter")).to_have_value("core.echo")
    expect(table.locator(f"[data-execution='{echo}']")).to_be_visible()
    expect(table.locator(f"[data-execution='{flow}']")).to_have_count(0)

    page.get_by_role("button", name="Clear Filters").click()
    page.get_by_label("Status filter").get_by_text("completed", exact=True).click()
    expect(table.locator(f"[data-execution='{echo}']")).to_be_visible()
    expect(table.locator(f"[data-execution='{flow}']")).to_have_count(0)
    page.get_by_label("Status filter").get_by_text("running", exact=True).click()  # two statuses
    expect(table.locator(f"[data-execution='{flow}']")).to_be_visible()
    expect(page).to_have_url(re.compile(r"status=completed%2Crunning|status=completed,running"))

    table.locator(f"[data-execution='{echo}'] td").nth(1).click()
    preview = page.get_by_test_id("execution-preview")
    expect(preview).to_contain_text(f"Execution #{echo}")
    page.keyboard.press("Escape")
    expect(preview).to_have_count(0)

    page.get_by_role("button", name="Clear Filters").click()
    page.get_by_role("button", name="By Workflow").click()
    workflows = page.get_by_test_id("workflow-table")
    workflows.get_by_role("button", name=f"Expand {flow}").click()
    expect(workflows).to_contain_text("ask")

    # Cancel the workflow that waits for an answer, from its page.
    page.goto(f"/executions/{flow}")
    page.get_by_role("button", name="Cancel", exact=True).click()
    page.get_by_role("dialog").get_by_role("button", name="Cancel execution").click()
    expect(page.locator("h1 [data-status]")).to_have_attribute("data-status", re.compile("cancel"))
    assert api(server, "GET", f"/api/v1/executions/{flow}")["status"] in ("canceling", "cancelled")
