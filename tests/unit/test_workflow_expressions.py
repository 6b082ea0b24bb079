"""The workflow expression context: namespaces, functions, Level 2 operators, type preservation."""

from __future__ import annotations

from typing import Any

import pytest

from attune.domain.templates import TemplateEngine, TemplateError
from attune.workflow import expressions

ENGINE = TemplateEngine()
TASKS = {
    "fetch": {"status": "completed", "result": {"succeeded": True, "data": {"items": [1, 2], "status": "x"}}},
    "running": {"status": "running"},
}


def context(outcome: expressions.Outcome | None = None, **extra: Any) -> dict[str, Any]:
    return expressions.build_context(
        parameters={"region": "eu", "n": 3, "flag": False},
        variables={"hosts": ["a", "b"], "my-var": {"x": 7}, "count": 0},
        tasks=TASKS,
        outcome=outcome,
        started_at="2025-01-01T00:00:00Z",
        **extra,
    )


def render(value: Any, ctx: dict[str, Any] | None = None) -> Any:
    return expressions.render(ENGINE, value, ctx if ctx is not None else context())


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ parameters.n }}", 3),
        ("  {{ vars.hosts }}  ", ["a", "b"]),
        ("{{ hosts }}", ["a", "b"]),
        ("{{ variables.count }}", 0),
        ("hosts={{ vars.hosts }}", 'hosts=["a","b"]'),
        ("{{ my-var.x }}", 7),
        ("v={{ my-var.x }}", "v=7"),
        ("{{ task.fetch.data.items }}", [1, 2]),
        ("{{ tasks.fetch.data.items.1 }}", 2),
        ("{{ task.fetch.result.data.items | length }}", 2),
        ("{{ task.fetch.data.status }}", "x"),
        ("{{ system.workflow_start }}", "2025-01-01T00:00:00Z"),
        ("{{ ctx().count }}", 0),
        ("{{ ctx('hosts') | first }}", "a"),
        ("{{ null }}", None),
        ("flag={{ parameters.flag }}", "flag=false"),
        ("{{ parameters.region == 'eu' and vars.hosts | length > 1 }}", True),
        ("{{ vars.hosts | map(attribute='x') | list }}", [None, None]),
        ("{{ parameters.missing | default('eu-west-1') }}", "eu-west-1"),
        ("{{ length(vars.hosts) }}", 2),
        ("{{ 'a' in vars.hosts }}", True),
        ("{{ vars.hosts | join(',') | upper }}", "A,B"),
        ("{{ 1 + 2.5 }}", 3.5),
    ],
)
def test_namespaces_and_level2(template: str, expected: Any) -> None:
    assert render(template) == expected


def test_task_status_and_unfinished_tasks() -> None:
    assert render("{{ task.fetch.status }}") == "completed"
    assert render("{{ task.running }}") is None  # no result yet: missing


def test_result_and_predicates_refer_to_outcome() -> None:
    finished = context(expressions.Outcome("timeout", {"error": "slow"}))
    assert render("{{ result().error }}", finished) == "slow"
    assert render("{{ [succeeded(), failed(), timed_out()] }}", finished) == [False, False, True]
    assert render("{{ result() }}") is None
    assert render("{{ succeeded() }}") is False


def test_item_and_index() -> None:
    scoped = expressions.with_item(context(), {"name": "h1"}, 4)
    assert render({"h": "{{ item.name }}", "i": "{{ index }}", "deep": ["{{ index }}"]}, scoped) == {
        "h": "h1",
        "i": 4,
        "deep": [4],
    }


def test_now_and_uuid() -> None:
    assert render("{{ now() }}").endswith("Z")
    assert len(render("{{ uuid() }}")) == 36


@pytest.mark.parametrize(
    ("value", "decision"),
    [
        (True, True),
        (False, False),
        (None, False),
        (0, False),
        (2, True),
        ("yes", True),
        (" No ", False),
        ("", False),
        ("None", True),
        ([], True),
    ],
)
def test_decide(value: Any, decision: bool) -> None:
    assert expressions.decide(value) is decision


def test_conditions() -> None:
    ok = context(expressions.Outcome("completed", {"data": {"status_code": 500}}))
    assert expressions.evaluate_condition(ENGINE, "{{ succeeded() }}", ok) is True
    assert expressions.evaluate_condition(ENGINE, "{{ not succeeded() }}", ok) is False
    assert (
        expressions.evaluate_condition(ENGINE, "{{ succeeded() and result().data.status_code == 200 }}", ok)
        is False
    )
    assert expressions.evaluate_condition(ENGINE, "{{ result().data.status_code }}", ok) is True


def test_errors_raise_template_error() -> None:
    with pytest.raises(TemplateError):
        render("{{ 1 / 0 }}")
    with pytest.raises(TemplateError):
        render("{{ vars.hosts < 3 }}")
    with pytest.raises(TemplateError):
        render("{{ vars.__class__ }}")


def test_vars_are_not_mutable_from_templates() -> None:
    ctx = context()
    with pytest.raises(TemplateError):
        render("{{ vars.hosts.append('c') }}", ctx)
    assert ctx["vars"]["hosts"] == ["a", "b"]
