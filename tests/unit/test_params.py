"""Flat parameter schemas: conversion, template-aware validation, defaults, secrets."""

from __future__ import annotations

from typing import Any

import pytest

from attune.domain import params
from attune.errors import AttuneError, ValidationFailed

HTTP_SCHEMA: dict[str, Any] = {
    "url": {"type": "string", "required": True, "description": "Target"},
    "method": {"type": "string", "enum": ["GET", "POST"], "default": "GET"},
    "retries": {"type": "integer", "default": 3, "minimum": 0, "maximum": 10},
    "token": {"type": "string", "secret": True, "position": 2},
    "verify": {"type": "boolean"},
}


def test_flat_schema_converts_to_json_schema() -> None:
    schema = params.to_json_schema(HTTP_SCHEMA)
    assert schema == {
        "type": "object",
        "properties": {
            "url": {"type": "string", "description": "Target"},
            "method": {"type": "string", "enum": ["GET", "POST"], "default": "GET"},
            "retries": {"type": "integer", "default": 3, "minimum": 0, "maximum": 10},
            "token": {"type": "string"},
            "verify": {"type": "boolean"},
        },
        "required": ["url"],
    }


def test_conversion_omits_empty_required_and_ignores_non_mapping_entries() -> None:
    assert params.to_json_schema({"a": {"type": "string"}, "b": "string"}) == {
        "type": "object",
        "properties": {"a": {"type": "string"}},
    }


def test_missing_schema_converts_to_none_and_accepts_anything() -> None:
    assert params.to_json_schema(None) is None
    params.validate_params({"x": object()}, None, kind="action", ref="p.a", allow_templates=False)


def test_full_form_schema_passes_through() -> None:
    full = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    assert params.to_json_schema(full) == full
    with pytest.raises(ValidationFailed, match="'n' is a required property"):
        params.validate_params({}, full, kind="action", ref="p.a", allow_templates=False)


def test_required_parameter_missing_is_reported() -> None:
    with pytest.raises(ValidationFailed) as caught:
        params.validate_params({}, HTTP_SCHEMA, kind="action", ref="core.http", allow_templates=False)
    assert caught.value.message == "Invalid parameters for action 'core.http': 'url' is a required property"
    assert caught.value.status == 422


def test_every_error_is_listed_sorted_with_json_pointer() -> None:
    with pytest.raises(ValidationFailed) as caught:
        params.validate_params(
            {"retries": 11, "method": "PUT", "verify": "yes"},
            HTTP_SCHEMA,
            kind="trigger",
            ref="p.t",
            allow_templates=False,
        )
    assert caught.value.message == (
        "Invalid parameters for trigger 'p.t': 'url' is a required property, "
        "'PUT' is not one of ['GET', 'POST'] at /method, "
        "11 is greater than the maximum of 10 at /retries, "
        "'yes' is not of type 'boolean' at /verify"
    )


def test_extra_parameters_are_allowed() -> None:
    params.validate_params(
        {"url": "u", "extra": 1}, HTTP_SCHEMA, kind="action", ref="p.a", allow_templates=False
    )


def test_literal_string_for_integer_is_rejected_even_with_templates_allowed() -> None:
    with pytest.raises(ValidationFailed, match="'3' is not of type 'integer' at /retries"):
        params.validate_params(
            {"url": "u", "retries": "3"}, HTTP_SCHEMA, kind="action", ref="p.a", allow_templates=True
        )


def test_templates_pass_for_any_type_when_allowed() -> None:
    templated = {
        "url": "{{ event.payload.url }}",
        "method": "{{ event.payload.method }}",
        "retries": "{{ event.payload.n }}",
        "verify": "{{ event.payload.v }}",
        "unknown": "{{ x }}",
    }
    params.validate_params(templated, HTTP_SCHEMA, kind="action", ref="p.a", allow_templates=True)
    with pytest.raises(ValidationFailed):
        params.validate_params(templated, HTTP_SCHEMA, kind="action", ref="p.a", allow_templates=False)


def test_is_template_needs_both_braces() -> None:
    assert params.is_template("{{ x }}")
    assert params.is_template("prefix {{ x }} suffix")
    assert not params.is_template("{{ x")
    assert not params.is_template("x }}")
    assert not params.is_template(5)


@pytest.mark.parametrize(
    ("prop", "expected"),
    [
        ({"type": "string"}, "__template_placeholder__"),
        ({}, "__template_placeholder__"),
        ({"type": "string", "enum": ["a", "b"], "default": "b"}, "a"),
        ({"type": "string", "default": "d"}, "d"),
        ({"type": "integer"}, 0),
        ({"type": "integer", "minimum": 5}, 5),
        ({"type": "integer", "minimum": 5, "default": 7}, 7),
        ({"type": "number"}, 0.0),
        ({"type": "number", "minimum": 1.5}, 1.5),
        ({"type": "boolean"}, True),
        ({"type": "boolean", "default": False}, False),
        ({"type": "array"}, []),
        ({"type": "object"}, {}),
        ({"type": "null"}, None),
        ({"anyOf": [{"type": "integer", "minimum": 2}, {"type": "string"}]}, 2),
        ({"oneOf": [{"type": "boolean"}, {"type": "integer"}]}, True),
    ],
)
def test_placeholder_per_property_type(prop: dict[str, Any], expected: Any) -> None:
    substituted = params.substitute_placeholders(
        {"p": "{{ x }}"}, {"type": "object", "properties": {"p": prop}}
    )
    assert substituted == {"p": expected}
    assert type(substituted["p"]) is type(expected)


def test_template_for_unknown_parameter_becomes_string_placeholder() -> None:
    result = params.substitute_placeholders({"nope": "{{ x }}"}, {"type": "object", "properties": {}})
    assert result == {"nope": "__template_placeholder__"}


def test_placeholders_reach_nested_objects_and_array_items() -> None:
    schema = params.to_json_schema(
        {
            "target": {
                "type": "object",
                "properties": {"port": {"type": "integer", "minimum": 1}, "tags": {"type": "array"}},
            },
            "ports": {"type": "array", "items": {"type": "integer", "minimum": 80}},
        }
    )
    value = {"target": {"port": "{{ p }}", "tags": "{{ t }}", "host": "h"}, "ports": ["{{ a }}", 443]}
    assert params.substitute_placeholders(value, schema) == {
        "target": {"port": 1, "tags": [], "host": "h"},
        "ports": [80, 443],
    }


def test_nested_literal_type_error_has_deep_pointer() -> None:
    schema = {"target": {"type": "object", "properties": {"port": {"type": "integer"}}}}
    with pytest.raises(ValidationFailed, match=r"'x' is not of type 'integer' at /target/port$"):
        params.validate_params(
            {"target": {"port": "x"}}, schema, kind="action", ref="p.a", allow_templates=True
        )


def test_templated_array_with_min_items_is_accepted() -> None:
    schema = {"packs": {"type": "array", "items": {"type": "string"}, "minItems": 1, "required": True}}
    params.validate_params(
        {"packs": "{{ event.payload.packs }}"}, schema, kind="action", ref="core.d", allow_templates=True
    )


def test_uncompilable_schema_is_a_server_error() -> None:
    with pytest.raises(AttuneError) as caught:
        params.validate_params(
            {"a": 1}, {"a": {"type": "strin"}}, kind="action", ref="p.a", allow_templates=False
        )
    assert not isinstance(caught.value, ValidationFailed)
    assert caught.value.status == 500
    assert "p.a" in caught.value.message


def test_defaults_fill_only_omitted_top_level_parameters() -> None:
    given = {"url": "u", "retries": 5}
    result = params.apply_defaults(given, HTTP_SCHEMA)
    assert result == {"url": "u", "retries": 5, "method": "GET"}
    assert given == {"url": "u", "retries": 5}


def test_defaults_are_copied_not_shared() -> None:
    schema = {"headers": {"type": "object", "default": {}}}
    first = params.apply_defaults({}, schema)
    first["headers"]["x"] = "1"
    assert params.apply_defaults(None, schema) == {"headers": {}}


def test_defaults_from_full_form_schema() -> None:
    full = {"type": "object", "properties": {"n": {"type": "integer", "default": 2}}}
    assert params.apply_defaults({}, full) == {"n": 2}
    assert params.apply_defaults({}, None) == {}


def test_secret_names() -> None:
    assert params.secret_names(HTTP_SCHEMA) == {"token"}
    assert params.secret_names(None) == set()
