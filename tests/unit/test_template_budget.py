"""Templates and YAQL stop at their budget (docs/security.md "Input limits")."""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Iterator

import pytest

from attune.domain import budget
from attune.domain.templates import TemplateBudgetExceeded, TemplateEngine, TemplateError
from attune.workflow.yaql_eval import YaqlEvaluator
from tests.unit.test_workflow_conductor import Rehearsal


@pytest.fixture(autouse=True)
def tight_limits() -> Iterator[None]:
    previous = budget.limits()
    budget.configure(budget.RenderLimits(timeout=0.5, max_output=100_000, max_build=1_000_000))
    yield
    budget.configure(previous)


def render(source: str) -> object:
    return TemplateEngine().render_value({"x": source}, {"payload": {"a": 1}})["x"]


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", "took longer"),
        ("{% for i in range(100000) %}{% for j in range(100000) %}{{ i }}{% endfor %}{% endfor %}", "limit"),
        ("{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}", "limit"),
        (
            "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
            "builds more",
        ),
        (
            "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
            "builds",
        ),
        ("{{ ('x' * 100000) | replace('x', 'yyyyyyyyyy') }}", "replace result"),
        ("{{ 'x' | center(10000000000) }}", "width"),
        ("{{ '%100000000d' % 1 }}", "format width"),
        ("{{ '{:>100000000}'.format(1) }}", "format width"),
        ("{{ [('x' * 100000)] * 100000 }}", "limit"),
        ("{{ range(100000) | batch(10000000000, 1) | list }}", "count"),
        ("{{ [1] | slice(10000000000) | list }}", "count"),
        ("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}", "nested too deeply"),
    ],
    ids=[
        "loop",
        "loop-output",
        "loop-text",
        "concat",
        "plus",
        "replace",
        "center",
        "percent",
        "format",
        "repeat",
        "batch",
        "slice",
        "recursion",
    ],
)
def test_a_runaway_template_stops_with_a_budget_error(source: str, reason: str) -> None:
    started = time.monotonic()
    with pytest.raises(TemplateBudgetExceeded) as caught:
        render(source)
    assert time.monotonic() - started < 3
    assert reason in caught.value.reason


def test_ordinary_templates_render_as_before() -> None:
    source = (
        "{{ payload.a }} {{ [1, 2] }} {{ 'a' ~ 'b' }} {{ 3 % 2 }} {{ '%05d' % 3 }} {{ '{:>3}'.format(1) }}"
        " {{ 'ab' | replace('a', 'c') }} {{ [1, 2] + [3] }}{% for x in [1, 2] %}{{ loop.index }}{% endfor %}"
    )
    assert render(source) == "1 [1,2] ab 1 00003   1 cb [1,2,3]12"
    assert render("{{ payload }}") == {"a": 1}
    assert render("{{ range(3) | list }}") == [0, 1, 2]


def test_a_budget_error_is_a_template_error() -> None:
    with pytest.raises(TemplateError):
        render("{{ 'x' | center(10000000000) }}")


def test_a_runaway_yaql_query_stops_at_the_time_limit() -> None:
    started = time.monotonic()
    with pytest.raises(TemplateBudgetExceeded) as caught:
        YaqlEvaluator().evaluate("range(0, 10000).select(range(0, 10000).sum()).sum()", {"vars": {}})
    assert time.monotonic() - started < 3
    assert "took longer" in caught.value.reason


async def test_offload_runs_off_the_event_loop_under_one_budget() -> None:
    engine = TemplateEngine()
    silent = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    with pytest.raises(TemplateBudgetExceeded):
        await budget.offload(engine.render_value, {"x": silent}, {})
    assert await budget.offload(engine.render_value, {"x": "{{ 1 + 1 }}"}, {}) == {"x": 2}


def test_a_workflow_task_whose_input_goes_over_budget_fails_with_the_reason() -> None:
    bomb = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    r = Rehearsal(
        """
ref: t.bomb
label: t
version: "1"
tasks:
  - {name: a, action: t.a, input: {x: "BOMB"}, next: [{when: "{{ failed() }}", do: [b]}]}
  - {name: b, action: t.b, input: {why: "{{ task.a.error }}"}}
""".replace("BOMB", bomb)
    )
    assert r.runs() == ["b"]
    assert "took longer than the limit of 0.5 s" in r.run_of("b").input["why"]


def test_a_printing_loop_holds_about_its_output_in_memory_not_its_pieces() -> None:
    # Each `{{ i }}` is a two-character piece; kept one by one until the end, 500,000 of them cost
    # Python ≈ 30 MB (object + list slot), which let the acceptance test's bomb grow the server by
    # 400 MB within its time limit. Joined as they come, the render holds about its 1 MB of text.
    source = "{% for i in range(10, 99) %}{% for j in range(100000) %}{{ i }}{% endfor %}{% endfor %}"
    budget.configure(budget.RenderLimits(timeout=30, max_output=1_000_000, max_build=10_000_000))
    tracemalloc.start()
    try:
        with pytest.raises(TemplateBudgetExceeded) as caught:
            render(source)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "output is larger" in caught.value.reason
    assert peak < 8_000_000, f"peak {peak / 1e6:.1f} MB for 1 MB of output"
