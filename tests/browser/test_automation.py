"""Triggers with webhooks, rules with template parameters, events and enforcements, keys
(docs/web-ui.md)."""

from __future__ import annotations

import json
import re

import httpx
import pytest
from playwright.sync_api import Page, expect

from attune.testing.deployment import Deployment
from tests.browser.conftest import api, login

pytestmark = pytest.mark.slow


def test_webhook_trigger_rule_events_and_enforcements(page: Page, server: Deployment) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    login(page, "/triggers/create")
    page.select_option("select[name=pack]", "uitest")
    page.fill("input[name=label]", "Hook")
    page.locator("input[name=label]").blur()
    expect(page.locator("input[name=ref]")).to_have_value("hook")
    page.check("input[name=webhook]")
    page.get_by_role("button", name="Create Trigger").click()
    page.wait_for_url("**/triggers/uitest.hook")
    url = page.get_by_test_id("webhook-url").inner_text()
    assert re.fullmatch(rf"{re.escape(server.base)}/api/v1/webhooks/\S+", url), url
    page.get_by_role("button", name="Copy").click()
    expect(page.get_by_role("button", name="Copied!")).to_be_visible()
    expect(page.get_by_role("link", name="Edit", exact=True)).to_be_visible()

    # A pack trigger is not editable.
    page.goto("/triggers/uitest.ping")
    expect(page.get_by_role("heading", name="Ping")).to_be_visible()
    expect(page.get_by_role("link", name="Edit", exact=True)).to_have_count(0)
    page.goto("/triggers/uitest.ping/edit")
    expect(page.get_by_role("alert")).to_contain_text("Only ad-hoc triggers can be edited")

    # A rule with a template parameter and a condition.
    page.goto("/rules/new")
    page.select_option("select[name=pack]", "uitest")
    page.fill("input[name=label]", "Greet from hook")
    page.locator("input[name=label]").blur()
    page.fill("input[name=description]", "Greets whoever the webhook names")
    page.select_option("select[name=trigger]", "uitest.hook")
    page.select_option("select[name=action]", "uitest.greet")
    page.locator("[data-param=name] input").fill("{{ event.payload.who }}")
    page.fill(
        "textarea[name=conditions]", json.dumps([{"field": "who", "operator": "equals", "value": "Grace"}])
    )
    page.get_by_role("button", name="Create Rule").click()
    page.wait_for_url("**/rules/uitest.greet_from_hook")
    expect(page.get_by_text("{{ event.payload.who }}")).to_be_visible()
    switch = page.get_by_role("switch", name="Enabled")
    expect(switch).to_have_attribute("aria-checked", "true")
    switch.click()
    expect(switch).to_have_attribute("aria-checked", "false")
    assert api(server, "GET", "/api/v1/rules/uitest.greet_from_hook")["enabled"] is False
    switch.click()
    expect(switch).to_have_attribute("aria-checked", "true")

    # A new event appears live on the events page; deep-link filters seed the inputs.
    page.goto("/events?trigger_ref=uitest.hook")
    expect(page.get_by_label("Trigger filter")).to_have_value("uitest.hook")
    expect(page.get_by_test_id("live-badge")).to_be_visible()
    expect(page.get_by_text("Events will appear here when triggers fire")).to_be_visible()
    page.wait_for_timeout(500)  # the subscription is acknowledged
    fired = httpx.post(url, json={"payload": {"who": "Grace"}}, timeout=10)
    assert fired.status_code < 300, fired.text
    row = page.get_by_test_id("events-table").locator("tbody tr").first
    expect(row).to_contain_text("uitest.hook")
    row.get_by_role("link").click()
    page.wait_for_url(re.compile(r"/events/\d+$"))
    expect(page.get_by_text('"who": "Grace"')).to_be_visible()
    page.get_by_role("link", name="Enforcements of this event").click()
    page.wait_for_url(re.compile(r"/enforcements\?event=\d+"))
    enforcement = page.get_by_test_id("enforcements-table").locator("tbody tr").first
    expect(enforcement).to_contain_text("uitest.greet_from_hook")
    enforcement.get_by_role("link").first.click()
    page.wait_for_url(re.compile(r"/enforcements/\d+$"))
    expect(page.get_by_role("link", name="uitest.greet_from_hook")).to_have_attribute(
        "href", "/rules/uitest.greet_from_hook"
    )
    page.get_by_role("link", name="Related executions").click()
    table = page.get_by_test_id("executions-table")
    expect(table.locator("tbody tr[data-execution]")).to_have_count(1)
    expect(table).to_contain_text("uitest.greet")

    # Delete the rule, confirming in the modal.
    page.goto("/rules/uitest.greet_from_hook")
    page.get_by_role("button", name="Delete", exact=True).click()
    page.get_by_role("dialog").get_by_role("button", name="Delete", exact=True).click()
    page.wait_for_url(re.compile(r"/rules$"))
    assert (
        httpx.get(f"{server.base}/api/v1/rules/uitest.greet_from_hook", headers=server.headers).status_code
        == 404
    )


def test_keys_encrypted_text_number_never_listed_reveal_scope_filter_delete(
    page: Page, server: Deployment
) -> None:
    login(page, "/keys")
    page.get_by_role("button", name="+ New Key").click()
    dialog = page.get_by_role("dialog")
    dialog.locator("input[name=ref]").fill("ui.api_token")
    dialog.locator("input[name=name]").fill("API token")
    dialog.locator("textarea[name=value]").fill("tok-123-secret")
    expect(dialog.locator("input[name=encrypted]")).to_be_checked()
    dialog.get_by_role("button", name="Save").click()
    expect(page.locator("[data-key='ui.api_token']")).to_contain_text("Yes")

    page.get_by_role("button", name="+ New Key").click()
    dialog = page.get_by_role("dialog")
    dialog.locator("input[name=ref]").fill("ui.replicas")
    dialog.locator("input[name=name]").fill("Replicas")
    dialog.locator("select[name=format]").select_option("number")
    expect(dialog.locator("input[name=encrypted]")).to_be_disabled()
    expect(dialog.locator("input[name=encrypted]")).not_to_be_checked()
    dialog.locator("textarea[name=value]").fill("three")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog.get_by_role("alert")).to_contain_text("must be a number")
    dialog.locator("textarea[name=value]").fill("3")
    dialog.get_by_role("button", name="Save").click()
    expect(page.locator("[data-key='ui.replicas']")).to_contain_text("No")
    expect(page.get_by_test_id("keys-table")).not_to_contain_text("tok-123-secret")

    page.locator("[data-key='ui.api_token']").get_by_role("button", name="Edit").click()
    dialog = page.get_by_role("dialog")
    assert dialog.locator("input[name=value]").get_attribute("type") == "password"
    dialog.get_by_role("button", name="Reveal value").click()
    expect(dialog.locator("textarea[name=value]")).to_have_value("tok-123-secret")
    dialog.get_by_role("button", name="Cancel").click()

    page.get_by_role("button", name="+ New Key").click()
    dialog = page.get_by_role("dialog")
    dialog.locator("input[name=ref]").fill("ui.pack_key")
    dialog.locator("input[name=name]").fill("Pack key")
    dialog.locator("textarea[name=value]").fill("p")
    dialog.locator("select[name=scope]").select_option("pack")
    dialog.locator("input[name=owner]").fill("uitest")
    dialog.get_by_role("button", name="Save").click()
    expect(page.locator("[data-key='ui.pack_key']")).to_contain_text("Pack")
    page.get_by_label("Scope filter").select_option("pack")
    expect(page.locator("[data-key='ui.pack_key']")).to_be_visible()
    expect(page.locator("[data-key='ui.api_token']")).to_have_count(0)
    page.get_by_label("Scope filter").select_option("")
    page.once("dialog", lambda d: d.accept())
    page.locator("[data-key='ui.replicas']").get_by_role("button", name="Delete", exact=True).click()
    expect(page.locator("[data-key='ui.replicas']")).to_have_count(0)


def test_lists_load_every_page_and_honour_the_pack_filter(page: Page, server: Deployment) -> None:
    for i in range(105):  # more than the server's page cap of 100
        api(
            server,
            "POST",
            "/api/v1/triggers",
            {"ref": f"uitest.bulk_{i:03d}", "label": f"Bulk {i}", "pack_ref": "uitest"},
        )
    login(page, "/triggers?pack=uitest")
    expect(page.locator("[data-ref^='uitest.bulk_']")).to_have_count(105)
    expect(page.locator("[data-ref^='core.']")).to_have_count(0)
    page.goto("/actions?pack=core")
    expect(page.locator("[data-ref='core.echo']")).to_be_visible()
    expect(page.locator("[data-ref='uitest.greet']")).to_have_count(0)
