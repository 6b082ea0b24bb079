"""The visual workflow builder, a workflow run drawn live, and answering an inquiry
(docs/web-ui.md)."""

from __future__ import annotations

import re

import pytest
import yaml
from playwright.sync_api import Locator, Page, expect

from attune.testing.deployment import Deployment
from tests.browser.conftest import api, login, screenshot

pytestmark = pytest.mark.slow


def _centre(locator: Locator) -> tuple[float, float]:
    locator.wait_for()
    box = locator.bounding_box()
    assert box is not None
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def _drag(page: Page, start: tuple[float, float], end: tuple[float, float]) -> None:
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move((start[0] + end[0]) / 2, (start[1] + end[1]) / 2, steps=5)
    page.mouse.move(*end, steps=5)
    page.mouse.up()


def _connect(page: Page, source: str, preset: str, target: str) -> None:
    handle = page.locator(f"[data-task='{source}'] [data-handle='{preset}']")
    _drag(page, _centre(handle), _centre(page.locator(f"[data-task='{target}']")))


def _yaml(page: Page) -> dict[str, object]:
    page.get_by_role("button", name="Raw YAML").click()
    text = page.get_by_test_id("workflow-yaml").inner_text()
    page.get_by_role("button", name="Visual", exact=True).click()
    loaded = yaml.safe_load(text)
    assert isinstance(loaded, dict)
    return loaded


def _task(doc: dict[str, object], name: str) -> dict[str, object]:
    tasks = doc["tasks"]
    assert isinstance(tasks, list)
    return next(t for t in tasks if t["name"] == name)


def test_draw_save_reload_and_run_a_workflow(page: Page, server: Deployment) -> None:
    login(page, "/actions/workflows/new")
    expect(page.get_by_text("Empty Workflow")).to_be_visible()
    page.get_by_label("Pack").select_option("uitest")
    page.get_by_label("Workflow name").fill("UI Flow!")
    expect(page.get_by_label("Workflow name")).to_have_value("ui_flow_")
    page.get_by_label("Workflow name").fill("ui_flow")
    page.get_by_label("Workflow label").fill("UI Flow")

    page.locator("[data-palette='core.echo']").click()
    inspector = page.get_by_test_id("task-inspector")
    expect(inspector.get_by_label("Task name")).to_have_value("echo_1")
    inspector.locator("[data-param=message] input").fill("first step")
    page.locator("[data-palette='core.echo']").click()
    expect(inspector.get_by_label("Task name")).to_have_value("echo_2")
    inspector.locator("[data-param=message] input").fill("second step")
    page.get_by_role("button", name="Close inspector").click()
    page.get_by_role("button", name="Fit View").click()

    _connect(page, "echo_1", "succeeded", "echo_2")
    expect(page.get_by_test_id("edge-label-On Success")).to_be_visible()
    _connect(page, "echo_2", "failed", "echo_2")  # a self-loop: retry the step when it fails
    expect(page.get_by_test_id("edge-label-On Failure")).to_be_visible()

    # Rename: every transition follows.
    page.locator("[data-task='echo_2']").click()
    inspector.get_by_label("Task name").fill("finish")
    inspector.get_by_label("Task name").blur()
    expect(page.locator("[data-task='finish']")).to_be_visible()
    doc = _yaml(page)
    assert _task(doc, "echo_1")["next"][0]["do"] == ["finish"]  # type: ignore[index]
    assert _task(doc, "finish")["next"][0]["do"] == ["finish"]  # type: ignore[index]

    # A waypoint on the success edge, and its label dragged along the curve.
    label = page.get_by_test_id("edge-label-On Success")
    label.click()
    plus = page.locator("[data-add-waypoint='0']")
    start = _centre(plus)
    _drag(page, start, (start[0] + 120, start[1]))
    label_start = _centre(label)
    _drag(page, label_start, (label_start[0] + 60, label_start[1] - 25))
    meta = _task(_yaml(page), "echo_1")["next"][0]["__chart_meta__"]  # type: ignore[index]
    assert len(meta["edge_waypoints"]["finish"]) == 1
    assert meta["label_positions"]["finish"] != 0.5
    assert meta["color"] == "#22c55e" and meta["label"] == "On Success"

    # Validation: a task without an action is an error; two start tasks need a confirmation.
    page.get_by_role("button", name="Add task").click()
    expect(page.get_by_test_id("issues-button")).not_to_have_text("0 issues")
    page.get_by_test_id("issues-button").click()
    expect(page.get_by_test_id("issues-list")).to_contain_text("has no action")
    inspector.get_by_label("Task action").select_option("core.noop")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("dialog")).to_contain_text("Several start tasks")
    page.get_by_role("dialog").get_by_role("button", name="Cancel").click()
    extra = inspector.get_by_label("Task name").input_value()
    page.get_by_role("button", name=f"Delete task {extra}").click()
    expect(page.get_by_test_id("start-tasks")).to_have_text("echo_1")

    before = _yaml(page)
    page.get_by_role("button", name="Save").click()
    page.wait_for_url("**/actions/workflows/uitest.ui_flow/edit")
    expect(page.get_by_test_id("save-status")).to_have_text("✓ Saved")

    # Reload: the same document, layout included (positions, waypoints, label positions).
    page.reload()
    expect(page.locator("[data-task='finish']")).to_be_visible()
    expect(page.get_by_label("Workflow name")).to_be_disabled()
    after = _yaml(page)
    page.locator("[data-palette='core.echo']").wait_for()
    page.locator("[data-task='echo_1']").click()
    expect(inspector.get_by_label("Task action")).to_have_value("core.echo")
    page.get_by_role("button", name="Fit View").click()
    page.wait_for_timeout(300)
    screenshot(page, "workflow-builder")
    assert after["tasks"] == before["tasks"]
    stored = api(server, "GET", "/api/v1/workflows/uitest.ui_flow")["definition"]
    assert _task(stored, "echo_1")["__chart_meta__"] == _task(before, "echo_1")["__chart_meta__"]

    # Run it: it completes, and the canvas on the execution page shows each task's status.
    page.goto("/actions/uitest.ui_flow")
    page.get_by_role("button", name="Execute").click()
    page.get_by_role("dialog").get_by_role("button", name="Execute").click()
    page.wait_for_url(re.compile(r"/executions/\d+$"))
    expect(page.locator("h1 [data-status]")).to_have_attribute("data-status", "completed", timeout=30_000)
    live = page.get_by_test_id("live-workflow")
    expect(live.get_by_test_id("task-status-echo_1")).to_have_text(re.compile("succeeded|completed"))
    expect(live.get_by_test_id("task-status-finish")).to_have_text(re.compile("succeeded|completed"))
    expect(page.get_by_test_id("workflow-tasks")).to_contain_text("finish")


SLOW_FLOW = {
    "ref": "uitest.slow_flow",
    "label": "Slow flow",
    "version": "1.0.0",
    "tasks": [
        {
            "name": "prepare",
            "action": "core.echo",
            "input": {"message": "ready"},
            "next": [{"when": "{{ succeeded() }}", "do": ["wait"]}],
            "__chart_meta__": {"position": {"x": 300, "y": 40}},
        },
        {
            "name": "wait",
            "action": "core.sleep",
            "input": {"seconds": 4},
            "next": [{"when": "{{ succeeded() }}", "do": ["report"]}],
            "__chart_meta__": {"position": {"x": 300, "y": 200}},
        },
        {
            "name": "report",
            "action": "core.echo",
            "input": {"message": "done"},
            "__chart_meta__": {"position": {"x": 300, "y": 360}},
        },
    ],
}


def test_a_running_workflow_is_drawn_live(page: Page, server: Deployment) -> None:
    api(
        server,
        "POST",
        "/api/v1/packs/uitest/workflow-files",
        {
            "name": "slow_flow",
            "label": "Slow flow",
            "version": "1.0.0",
            "pack_ref": "uitest",
            "definition": SLOW_FLOW,
        },
    )
    execution = api(server, "POST", "/api/v1/executions/execute", {"action_ref": "uitest.slow_flow"})
    login(page, f"/executions/{execution['id']}")
    live = page.get_by_test_id("live-workflow")
    expect(live.get_by_test_id("task-status-wait")).to_have_text("running", timeout=20_000)
    expect(live.get_by_test_id("task-status-prepare")).to_have_text(re.compile("succeeded|completed"))
    screenshot(page, "workflow-running")
    expect(live.get_by_test_id("task-status-report")).to_have_text(
        re.compile("succeeded|completed"), timeout=30_000
    )
    expect(page.locator("h1 [data-status]")).to_have_attribute("data-status", "completed")


def test_answer_an_inquiry_and_watch_the_waiting_workflow_finish(page: Page, server: Deployment) -> None:
    execution = api(server, "POST", "/api/v1/executions/execute", {"action_ref": "uitest.approval"})
    login(page, "/inquiries")
    row = page.locator("[data-inquiry]", has_text="Ship it?").first
    expect(row).to_be_visible(timeout=20_000)
    asked_by = int(row.get_by_role("link").inner_text().lstrip("#"))  # the workflow's `ask` task
    assert api(server, "GET", f"/api/v1/executions/{asked_by}")["parent"] == execution["id"]
    row.get_by_role("button", name="Respond").click()
    form = page.get_by_test_id("inquiry-form")
    expect(form).to_contain_text("Ship it?")
    expect(form.locator("[data-param=approved] input")).not_to_be_checked()
    form.locator("[data-param=approved] input").check()
    form.locator("[data-param=comment] input").fill("Looks good")
    screenshot(page, "inquiry-form")
    form.get_by_role("button", name="Submit Response").click()
    expect(page.get_by_role("dialog")).to_have_count(0)
    page.goto(f"/executions/{execution['id']}")
    expect(page.locator("h1 [data-status]")).to_have_attribute("data-status", "completed", timeout=20_000)
    expect(page.get_by_test_id("live-workflow").get_by_test_id("task-status-report")).to_have_text(
        re.compile("succeeded|completed")
    )
    children = api(server, "GET", f"/api/v1/executions?parent={execution['id']}")
    report = next(c for c in children if c["workflow_task"]["task_name"] == "report")
    assert "approved=true" in str(api(server, "GET", f"/api/v1/executions/{report['id']}")["result"]).lower()


def test_click_to_connect_draws_transitions_and_a_background_click_cancels(page: Page) -> None:
    """Issue #15: click a handle, then click a node (the source included) to add the target."""
    login(page, "/actions/workflows/new")
    page.get_by_label("Pack").select_option("uitest")
    page.get_by_label("Workflow name").fill("click_flow")
    page.locator("[data-palette='core.echo']").click()
    page.locator("[data-palette='core.echo']").click()
    page.get_by_role("button", name="Close inspector").click()
    page.get_by_role("button", name="Fit View").click()
    canvas = page.get_by_test_id("workflow-canvas")
    banner = canvas.get_by_text("Click a task to connect as")

    # A background click cancels the connection in progress: nothing is drawn.
    page.locator("[data-task='echo_1'] [data-handle='always']").click()
    expect(banner).to_contain_text("always transition")
    expect(page.locator("[data-task='echo_2']")).to_contain_text("Drop to connect")
    expect(page.locator("[data-task='echo_1']")).to_contain_text("Drop to self-loop")
    page.locator(".react-flow__pane").click(position={"x": 15, "y": 15})
    expect(banner).to_have_count(0)
    assert "next" not in _task(_yaml(page), "echo_1")

    page.locator("[data-task='echo_1'] [data-handle='succeeded']").click()
    expect(banner).to_contain_text("succeeded transition")
    page.locator("[data-task='echo_2']").click()
    expect(banner).to_have_count(0)
    expect(page.get_by_test_id("edge-label-On Success")).to_be_visible()
    page.locator("[data-task='echo_2'] [data-handle='failed']").click()
    page.locator("[data-task='echo_2']").click()  # the source itself: a self-loop
    expect(page.get_by_test_id("edge-label-On Failure")).to_be_visible()
    # Clicking the same target again adds no duplicate.
    page.locator("[data-task='echo_1'] [data-handle='succeeded']").click()
    page.locator("[data-task='echo_2']").click()

    doc = _yaml(page)
    first = _task(doc, "echo_1")["next"]
    second = _task(doc, "echo_2")["next"]
    assert isinstance(first, list) and isinstance(second, list)
    assert len(first) == 1 and first[0]["do"] == ["echo_2"]
    assert "succeeded()" in first[0]["when"]
    assert len(second) == 1 and second[0]["do"] == ["echo_2"]
    assert "failed()" in second[0]["when"]
