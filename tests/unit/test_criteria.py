"""Rule condition evaluation (docs/operations.md plus the operators and grouping of issue 3)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import pytest

from attune.domain.criteria import CriteriaError, json_equal, matches
from attune.domain.templates import TemplateEngine, rule_context

PAYLOAD: dict[str, Any] = {
    "severity": "High",
    "count": 5,
    "ratio": 0.25,
    "flag": True,
    "nothing": None,
    "message": "Disk /var is FULL on web-1",
    "tags": ["prod", "Web", 3],
    "meta": {"host": "web-1", "region": "eu-west"},
    "items": [{"name": "a"}, {"name": "b"}],
}


@pytest.fixture(scope="module")
def engine() -> TemplateEngine:
    return TemplateEngine()


def check(conditions: Any, payload: Any = PAYLOAD, engine: TemplateEngine | None = None) -> bool:
    engine = engine or TemplateEngine()
    ctx = rule_context(
        event={
            "payload": payload,
            "id": 1,
            "trigger": "core.webhook",
            "created": datetime(2024, 1, 1, tzinfo=UTC),
        },
        pack_config={"threshold": 4},
        rule_id=9,
        rule_ref="p.rule",
        now=datetime(2024, 1, 1, 0, 1, tzinfo=UTC),
    )
    return matches(conditions, payload, engine=engine, context=ctx)


def cond(field: str, operator: str, value: Any = None) -> dict[str, Any]:
    return {"field": field, "operator": operator, "value": value}


# -- trivial cases ----------


@pytest.mark.parametrize("conditions", [None, [], {}])
def test_null_or_empty_conditions_match(conditions: Any) -> None:
    assert check(conditions) is True


def test_null_payload_matches_even_with_conditions() -> None:
    assert check([cond("severity", "equals", "nope")], payload=None) is True


@pytest.mark.parametrize("conditions", ["severity == High", 5, True])
def test_conditions_that_are_not_list_or_object_never_match(conditions: Any) -> None:
    assert check(conditions) is False


# -- operators ----------


@pytest.mark.parametrize(
    ("field", "operator", "value", "expected"),
    [
        # equals / not_equals: exact JSON equality, type included
        ("severity", "equals", "High", True),
        ("severity", "equals", "high", False),
        ("count", "equals", 5, True),
        ("count", "equals", 5.0, True),
        ("count", "equals", "5", False),
        ("flag", "equals", True, True),
        ("flag", "equals", 1, False),
        ("count", "equals", True, False),
        ("nothing", "equals", None, True),
        ("meta", "equals", {"region": "eu-west", "host": "web-1"}, True),
        ("meta", "equals", {"host": "web-1"}, False),
        ("tags", "equals", ["prod", "Web", 3.0], True),
        ("tags", "equals", ["Web", "prod", 3], False),
        ("count", "not_equals", "5", True),
        ("count", "not_equals", 5, False),
        ("severity", "not_equals", "Low", True),
        # contains: substring or list membership
        ("message", "contains", "/var", True),
        ("message", "contains", "full", False),
        ("tags", "contains", "prod", True),
        ("tags", "contains", 3, True),
        ("tags", "contains", "web", False),
        ("count", "contains", 5, False),
        ("message", "contains", 5, False),
        # case-insensitive
        ("severity", "iequals", "HIGH", True),
        ("severity", "iequals", "low", False),
        ("count", "iequals", 5, True),
        ("count", "iequals", "5", False),
        ("message", "icontains", "full on WEB", True),
        ("message", "icontains", "empty", False),
        ("tags", "icontains", "web", True),
        ("tags", "icontains", "PROD", True),
        ("tags", "icontains", "dev", False),
        # prefixes and suffixes
        ("message", "startswith", "Disk", True),
        ("message", "startswith", "disk", False),
        ("message", "endswith", "web-1", True),
        ("message", "endswith", "web", False),
        ("count", "startswith", "5", False),
        # regular expressions (search, not full match)
        ("message", "matchregex", r"/var\b", True),
        ("message", "matchregex", r"^web", False),
        ("meta.host", "matchregex", r"^web-\d+$", True),
        ("count", "matchregex", r"5", False),
        # ordering: numbers numerically, strings lexicographically, mixed types false
        ("count", "gt", 4, True),
        ("count", "gt", 5, False),
        ("count", "gte", 5, True),
        ("count", "gte", 5.5, False),
        ("count", "lt", 10, True),
        ("count", "lt", 5, False),
        ("count", "lte", 5.0, True),
        ("count", "lte", 4, False),
        ("ratio", "lt", 1, True),
        ("severity", "gt", "Apple", True),
        ("severity", "lt", "Apple", False),
        ("count", "gt", "4", False),
        ("count", "lt", "40", False),
        ("flag", "gt", 0, False),
        ("nothing", "lt", 1, False),
        # membership
        ("severity", "in", ["Low", "High"], True),
        ("severity", "in", ["low", "high"], False),
        ("count", "in", [1, 5.0], True),
        ("count", "in", ["5"], False),
        ("severity", "nin", ["Low"], True),
        ("severity", "nin", ["High", "Low"], False),
        ("count", "nin", ["5"], True),
    ],
)
def test_operator(field: str, operator: str, value: Any, expected: bool, engine: TemplateEngine) -> None:
    assert check([cond(field, operator, value)], engine=engine) is expected


def test_operator_names_are_case_insensitive(engine: TemplateEngine) -> None:
    assert check([cond("count", "EQUALS", 5)], engine=engine) is True
    assert check([cond("count", " Gt ", 4)], engine=engine) is True


@pytest.mark.parametrize(
    ("field", "expected_exists"),
    [("severity", True), ("nothing", True), ("meta.host", True), ("items.1.name", True),
     ("missing", False), ("meta.missing", False), ("items.5.name", False), ("severity.deeper", False)],
)  # fmt: skip
def test_exists_and_nexists_never_raise(field: str, expected_exists: bool, engine: TemplateEngine) -> None:
    assert check([{"field": field, "operator": "exists"}], engine=engine) is expected_exists
    assert check([{"field": field, "operator": "nexists"}], engine=engine) is (not expected_exists)


def test_nested_paths_and_array_indexes(engine: TemplateEngine) -> None:
    assert check([cond("meta.region", "equals", "eu-west")], engine=engine) is True
    assert check([cond("items.1.name", "equals", "b")], engine=engine) is True
    assert check([cond("tags.0", "equals", "prod")], engine=engine) is True


def test_field_is_resolved_from_the_payload_root_not_payload_prefix(engine: TemplateEngine) -> None:
    with pytest.raises(CriteriaError):
        check([cond("payload.severity", "equals", "High")], engine=engine)


@pytest.mark.parametrize(
    "field", ["missing", "meta.missing", "items.7.name", "items.x", "count.sub", "items.-1"]
)
@pytest.mark.parametrize("operator", ["equals", "not_equals", "contains", "gt", "in", "matchregex"])
def test_missing_field_raises(field: str, operator: str, engine: TemplateEngine) -> None:
    with pytest.raises(CriteriaError, match="not in the event payload"):
        check([cond(field, operator, ["x"] if operator == "in" else "x")], engine=engine)


def test_unknown_operator_is_false_and_warns(
    engine: TemplateEngine, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="attune.domain.criteria"):
        assert check([cond("count", "approximately", 5)], engine=engine) is False
    assert "approximately" in caplog.text


@pytest.mark.parametrize(
    "condition",
    [
        {"operator": "equals", "value": 1},
        {"field": "count", "value": 1},
        {"field": "", "operator": "equals", "value": 1},
        {"field": 3, "operator": "equals", "value": 1},
        {"field": "count", "operator": None, "value": 1},
        {"field": "count", "operator": "in", "value": 5},
        {"field": "count", "operator": "nin", "value": "5"},
        {"field": "message", "operator": "matchregex", "value": "([unclosed"},
        {"field": "message", "operator": "matchregex", "value": 5},
        {"all": {"field": "count", "operator": "equals", "value": 5}},
        {"any": "nope"},
        {"all": [], "any": []},
        {"all": [], "field": "count", "operator": "exists"},
        {"expression": 5},
        {"something": "else"},
    ],
)
def test_malformed_conditions_raise(condition: dict[str, Any], engine: TemplateEngine) -> None:
    with pytest.raises(CriteriaError):
        check([condition], engine=engine)


def test_a_non_object_item_inside_the_list_raises(engine: TemplateEngine) -> None:
    with pytest.raises(CriteriaError):
        check([cond("count", "equals", 5), "count == 5"], engine=engine)


# -- grouping ----------


def test_list_is_and(engine: TemplateEngine) -> None:
    assert check([cond("count", "gt", 1), cond("severity", "equals", "High")], engine=engine) is True
    assert check([cond("count", "gt", 1), cond("severity", "equals", "Low")], engine=engine) is False


def test_all_and_any_groups(engine: TemplateEngine) -> None:
    high = cond("severity", "equals", "High")
    low = cond("severity", "equals", "Low")
    assert check({"all": [high, cond("count", "equals", 5)]}, engine=engine) is True
    assert check({"all": [high, low]}, engine=engine) is False
    assert check({"any": [low, high]}, engine=engine) is True
    assert check({"any": [low, cond("count", "lt", 0)]}, engine=engine) is False
    assert check({"all": []}, engine=engine) is True
    assert check({"any": []}, engine=engine) is False


def test_groups_nest(engine: TemplateEngine) -> None:
    conditions = {
        "any": [
            {"all": [cond("severity", "equals", "Low"), cond("count", "gt", 0)]},
            {"all": [cond("meta.region", "startswith", "eu"), {"not": cond("flag", "equals", False)}]},
        ]
    }
    assert check(conditions, engine=engine) is True
    conditions["any"][1]["all"].append(cond("count", "gt", 100))
    assert check(conditions, engine=engine) is False


def test_not_negates(engine: TemplateEngine) -> None:
    assert check({"not": cond("severity", "equals", "Low")}, engine=engine) is True
    assert check({"not": {"any": [cond("severity", "equals", "High")]}}, engine=engine) is False
    assert (
        check([{"not": [cond("count", "equals", 5), cond("flag", "equals", False)]}], engine=engine) is True
    )


def test_any_short_circuits_before_a_missing_field(engine: TemplateEngine) -> None:
    assert check({"any": [cond("count", "equals", 5), cond("missing", "equals", 1)]}, engine=engine) is True
    with pytest.raises(CriteriaError):
        check({"any": [cond("missing", "equals", 1), cond("count", "equals", 5)]}, engine=engine)


# -- expression form ----------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("{{ event.payload.severity == 'High' and event.payload.count > 3 }}", True),
        ("{{ event.payload.severity == 'high' and event.payload.count > 3 }}", False),
        ("event.payload.count >= pack.config.threshold", True),
        ("{{ 'prod' in event.payload.tags }}", True),
        ("{{ event.payload.meta.host | upper == 'WEB-1' }}", True),
        ("{{ system.rule.ref == 'p.rule' and event.trigger == 'core.webhook' }}", True),
        ("{{ event.payload.items | length }}", True),
        ("{{ event.payload.nothing }}", False),
        ("{{ event.payload.missing }}", False),
        ("{{ event.payload.missing == 'x' }}", False),
    ],
)
def test_expression_truthiness(expression: str, expected: bool, engine: TemplateEngine) -> None:
    assert check({"expression": expression}, engine=engine) is expected


def test_expression_combines_with_field_conditions(engine: TemplateEngine) -> None:
    conditions = [{"expression": "{{ event.payload.count > 3 }}"}, cond("severity", "iequals", "high")]
    assert check(conditions, engine=engine) is True
    assert check({"any": [{"expression": "false"}, cond("count", "equals", 5)]}, engine=engine) is True


@pytest.mark.parametrize(
    "expression",
    ["{{ event.payload.count > }}", "{{ ().__class__ }}", "{{ event.payload.missing > 3 }}", "a {{ b }}"],
)
def test_bad_expression_raises_criteria_error(expression: str, engine: TemplateEngine) -> None:
    with pytest.raises(CriteriaError):
        check({"expression": expression}, engine=engine)


# -- equality helper ----------


@pytest.mark.parametrize(
    ("left", "right", "expected"),
    [
        (1, 1.0, True),
        (True, 1, False),
        (False, 0, False),
        (True, True, True),
        ("5", 5, False),
        (None, None, True),
        (None, "", False),
        ({"a": [1, {"b": 2}]}, {"a": [1.0, {"b": 2.0}]}, True),
        ({"a": 1}, {"a": True}, False),
        ([1, 2], [1, 2, 3], False),
    ],
)
def test_json_equal(left: Any, right: Any, expected: bool) -> None:
    assert json_equal(left, right) is expected
    assert json_equal(right, left) is expected
