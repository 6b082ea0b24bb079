"""Sandboxed templating of rule action_params (docs/operations.md, docs/workflows.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from attune.domain.templates import (
    TemplateEngine,
    TemplateError,
    resolve_action_params,
    rfc3339,
    rule_context,
)
from attune.errors import ValidationFailed

NOW = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
CREATED = datetime(2024, 5, 6, 7, 0, 0, 123000, tzinfo=UTC)

PAYLOAD: dict[str, Any] = {
    "host": "web-1",
    "count": 42,
    "ratio": 0.5,
    "ok": True,
    "off": False,
    "nothing": None,
    "meta": {"region": "eu", "tags": ["a", "b"]},
    "items": [{"name": "first", "size": 1}, {"name": "second", "size": 2}],
    "0": "zero-key",
}


@pytest.fixture
def engine() -> TemplateEngine:
    return TemplateEngine()


@pytest.fixture
def ctx() -> dict[str, Any]:
    return rule_context(
        event={"payload": PAYLOAD, "id": 17, "trigger": "core.webhook", "created": CREATED},
        pack_config={"channel": "#ops", "limits": {"max": 3}},
        rule_id=5,
        rule_ref="mypack.on_alert",
        now=NOW,
    )


# -- context ----------


def test_rule_context_has_the_three_roots(ctx: dict[str, Any]) -> None:
    assert ctx.pop("trigger") == PAYLOAD  # StackStorm's name for the payload
    assert ctx == {
        "event": {
            "payload": PAYLOAD,
            "id": 17,
            "trigger": "core.webhook",
            "created": "2024-05-06T07:00:00.123000Z",
        },
        "pack": {"config": {"channel": "#ops", "limits": {"max": 3}}},
        "system": {"timestamp": "2024-05-06T07:08:09Z", "rule": {"id": 5, "ref": "mypack.on_alert"}},
    }


def test_rule_context_defaults_for_null_payload_and_config() -> None:
    ctx = rule_context(
        event={"payload": None, "id": 1, "trigger_ref": "core.timer", "created": "2024-01-01T00:00:00Z"},
        pack_config=None,
        rule_id=2,
        rule_ref="p.r",
        now=NOW,
    )
    assert ctx["event"]["payload"] == {}
    assert ctx["event"]["trigger"] == "core.timer"
    assert ctx["event"]["created"] == "2024-01-01T00:00:00Z"
    assert ctx["pack"] == {"config": {}}


def test_rfc3339_converts_to_utc_and_treats_naive_as_utc() -> None:
    plus2 = timezone(timedelta(hours=2))
    assert rfc3339(datetime(2024, 1, 1, 12, 0, tzinfo=plus2)) == "2024-01-01T10:00:00Z"
    assert rfc3339(datetime(2024, 1, 1, 12, 0)) == "2024-01-01T12:00:00Z"


# -- type preservation ----------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ event.payload.count }}", 42),
        ("{{event.payload.count}}", 42),
        ("{{ event.payload.ratio }}", 0.5),
        ("{{ event.payload.ok }}", True),
        ("{{ event.payload.off }}", False),
        ("{{ event.payload.nothing }}", None),
        ("{{ event.payload.host }}", "web-1"),
        ("{{ event.payload.meta }}", {"region": "eu", "tags": ["a", "b"]}),
        ("{{ event.payload.meta.tags }}", ["a", "b"]),
        ("{{ event.id }}", 17),
        ("{{ event.payload.count + 1 }}", 43),
        ("{{ event.payload.count > 40 }}", True),
        ("{{ {'a': {'b': 1}} }}", {"a": {"b": 1}}),
        ("{{ '}}' }}", "}}"),
        ("{{ (1, 2) }}", [1, 2]),
    ],
)
def test_single_template_keeps_json_type(
    engine: TemplateEngine, ctx: dict[str, Any], source: str, expected: Any
) -> None:
    result = engine.render_value(source, ctx)
    assert result == expected
    assert type(result) is type(expected)


def test_surrounding_whitespace_makes_it_a_string(engine: TemplateEngine, ctx: dict[str, Any]) -> None:
    assert engine.render_value(" {{ event.payload.count }}", ctx) == " 42"
    assert engine.render_value("{{ event.payload.count }}\n", ctx) == "42\n"


@pytest.mark.parametrize(
    "source",
    [
        "{{ event.payload.missing }}",
        "{{ event.payload.missing.deeper.still }}",
        "{{ event.payload.items.9.name }}",
        "{{ nowhere.at.all }}",
        "{{ pack.config.absent }}",
        "{{ event.payload.meta.region.x }}",
    ],
)
def test_missing_path_gives_none(engine: TemplateEngine, ctx: dict[str, Any], source: str) -> None:
    assert engine.render_value(source, ctx) is None


def test_dict_key_wins_over_dict_method(engine: TemplateEngine, ctx: dict[str, Any]) -> None:
    # "items" and "keys" are dict methods in Python; in a payload they are ordinary fields.
    assert engine.render_value("{{ event.payload.items.1.name }}", ctx) == "second"
    assert engine.render_value("{{ event.payload.meta.keys }}", ctx) is None


@pytest.mark.parametrize(
    "source",
    [
        "{{ event.payload.items.0.name }}",
        "{{ event.payload.items[0].name }}",
        "{{ event.payload.items['0'].name }}",
        "{{ event.payload['items'][0]['name'] }}",
    ],
)
def test_array_indexing(engine: TemplateEngine, ctx: dict[str, Any], source: str) -> None:
    assert engine.render_value(source, ctx) == "first"


def test_numeric_segment_reaches_a_numeric_dict_key(engine: TemplateEngine, ctx: dict[str, Any]) -> None:
    assert engine.render_value("{{ event.payload.0 }}", ctx) == "zero-key"


# -- mixed strings ----------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ event.payload.host }} is down", "web-1 is down"),
        ("n={{ event.payload.count }}", "n=42"),
        ("r={{ event.payload.ratio }}", "r=0.5"),
        ("ok={{ event.payload.ok }}/{{ event.payload.off }}", "ok=true/false"),
        ("[{{ event.payload.nothing }}]", "[]"),
        ("[{{ event.payload.missing.x }}]", "[]"),
        ("m={{ event.payload.meta }}", 'm={"region":"eu","tags":["a","b"]}'),
        ("t={{ event.payload.meta.tags }}", 't=["a","b"]'),
        ("{{ event.payload.host }}{{ event.payload.count }}", "web-142"),
        ("{% if event.payload.ok %}yes{% else %}no{% endif %}", "yes"),
        ("{{ event.payload.host | upper }} in {{ event.payload.meta.region }}", "WEB-1 in eu"),
        ("plain text", "plain text"),
        ("", ""),
    ],
)
def test_mixed_strings_render_json_style(
    engine: TemplateEngine, ctx: dict[str, Any], source: str, expected: str
) -> None:
    assert engine.render_value(source, ctx) == expected


def test_rendered_text_is_not_rescanned(engine: TemplateEngine) -> None:
    ctx = {"event": {"payload": {"x": "{{ event.payload.y }}", "y": "secret"}}}
    assert engine.render_value("v={{ event.payload.x }}", ctx) == "v={{ event.payload.y }}"
    assert engine.render_value("{{ event.payload.x }}", ctx) == "{{ event.payload.y }}"


def test_no_html_escaping(engine: TemplateEngine) -> None:
    ctx = {"event": {"payload": {"html": "<b>&'\""}}}
    assert engine.render_value("x {{ event.payload.html }}", ctx) == "x <b>&'\""


# -- namespaces ----------


def test_event_pack_and_system_namespaces(engine: TemplateEngine, ctx: dict[str, Any]) -> None:
    params = {
        "channel": "{{ pack.config.channel }}",
        "max": "{{ pack.config.limits.max }}",
        "trigger": "{{ event.trigger }}",
        "created": "{{ event.created }}",
        "at": "{{ system.timestamp }}",
        "rule": "{{ system.rule.ref }}#{{ system.rule.id }}",
        "rule_id": "{{ system.rule.id }}",
    }
    assert engine.render_value(params, ctx) == {
        "channel": "#ops",
        "max": 3,
        "trigger": "core.webhook",
        "created": "2024-05-06T07:00:00.123000Z",
        "at": "2024-05-06T07:08:09Z",
        "rule": "mypack.on_alert#5",
        "rule_id": 5,
    }


def test_walks_json_and_leaves_keys_and_non_strings_alone(
    engine: TemplateEngine, ctx: dict[str, Any]
) -> None:
    doc = {
        "{{ event.id }}": "{{ event.id }}",
        "list": ["{{ event.payload.count }}", 1, None, True, {"deep": "{{ event.payload.host }}!"}],
        "n": 3.5,
        "b": False,
        "z": None,
    }
    assert engine.render_value(doc, ctx) == {
        "{{ event.id }}": 17,
        "list": [42, 1, None, True, {"deep": "web-1!"}],
        "n": 3.5,
        "b": False,
        "z": None,
    }


# -- filters ----------


def test_to_json_and_from_json_filters(engine: TemplateEngine, ctx: dict[str, Any]) -> None:
    assert (
        engine.render_value("{{ event.payload.meta | to_json }}", ctx) == '{"region":"eu","tags":["a","b"]}'
    )
    assert engine.render_value("{{ '{\"a\": [1, 2]}' | from_json }}", ctx) == {"a": [1, 2]}
    assert engine.render_value("{{ event.payload.items | map(attribute='name') | list }}", ctx) == [
        "first",
        "second",
    ]
    assert engine.render_value("{{ event.payload.missing | default('fallback') }}", ctx) == "fallback"
    assert engine.render_value("{{ event.payload.items | length }}", ctx) == 2


def test_from_json_of_invalid_text_is_an_error(engine: TemplateEngine, ctx: dict[str, Any]) -> None:
    with pytest.raises(TemplateError):
        engine.render_value("{{ 'not json' | from_json }}", ctx)


# -- errors and sandbox ----------


@pytest.mark.parametrize(
    "source", ["{{ event.payload. }}", "{{ 1 + }}", "x {{ event.id ", "{% if %}", "{{ a b }}"]
)
def test_syntax_error_raises_template_error_naming_the_template(engine: TemplateEngine, source: str) -> None:
    with pytest.raises(TemplateError) as info:
        engine.render_value({"k": [source]}, {})
    assert info.value.template == source
    assert source.strip() in str(info.value)
    assert isinstance(info.value, ValidationFailed)


@pytest.mark.parametrize(
    "source",
    [
        "{{ ().__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "x {{ ().__class__.__base__ }}",
        "{{ self._TemplateReference__context }}",
        "{{ event.payload.__class__ }}",
        "{{ event.payload['__class__'] }}",
        "{{ event.payload.meta.update({'region': 'us'}) }}",
        "{{ event.payload.meta.tags.append('c') }}",
        "{{ event.payload.host.format.__globals__ }}",
        "{{ range(10000000) | list }}",
        "{{ 'a' * 100000000 }}",
        "{{ 9 ** 9999999 }}",
    ],
)
def test_sandbox_escapes_fail(engine: TemplateEngine, ctx: dict[str, Any], source: str) -> None:
    with pytest.raises(TemplateError):
        engine.render_value(source, ctx)
    # The context is immutable from templates.
    assert ctx["event"]["payload"]["meta"] == {"region": "eu", "tags": ["a", "b"]}


def test_self_does_not_leak_internals(engine: TemplateEngine, ctx: dict[str, Any]) -> None:
    assert engine.render_value("{{ self }}", ctx) is None
    assert engine.render_value("x{{ self }}", ctx) == "x"


def test_ordering_a_missing_value_is_an_error(engine: TemplateEngine, ctx: dict[str, Any]) -> None:
    with pytest.raises(TemplateError):
        engine.render_value("{{ event.payload.missing > 3 }}", ctx)


# -- evaluate / is_template ----------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("{{ event.payload.count > 3 and event.payload.host == 'web-1' }}", True),
        ("event.payload.count > 3 and event.payload.host == 'web-1'", True),
        ("  {{ event.payload.count < 3 }}  ", False),
        ("event.payload.meta.tags", ["a", "b"]),
        ("event.payload.missing", None),
        ("'b' in event.payload.meta.tags", True),
        ("event.payload.missing == 'x'", False),
    ],
)
def test_evaluate(engine: TemplateEngine, ctx: dict[str, Any], expression: str, expected: Any) -> None:
    assert engine.evaluate(expression, ctx) == expected


@pytest.mark.parametrize(
    "expression", ["", "   ", "{{ a }} and {{ b }}", "x {{ a }}", "a ==", "{% if a %}1{% endif %}"]
)
def test_evaluate_rejects_non_expressions(engine: TemplateEngine, expression: str) -> None:
    with pytest.raises(TemplateError):
        engine.evaluate(expression, {})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("{{ x }}", True),
        ("a {% if x %}b{% endif %}", True),
        ("{# note #}", True),
        ("plain", False),
        (5, False),
        (None, False),
    ],
)
def test_is_template(engine: TemplateEngine, value: Any, expected: bool) -> None:
    assert engine.is_template(value) is expected


# -- compile cache ----------


def test_compiled_templates_are_cached_by_source(
    engine: TemplateEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = engine.environment
    real_compile = env.compile
    compiled: list[Any] = []

    def counting_compile(source: Any, *args: Any, **kwargs: Any) -> Any:
        compiled.append(source)
        return real_compile(source, *args, **kwargs)

    monkeypatch.setattr(env, "compile", counting_compile)
    sources = ["{{ event.id }}", "id={{ event.id }}"]
    for n in range(5):
        ctx = {"event": {"id": n}}
        assert engine.render_value(sources, ctx) == [n, f"id={n}"]
        assert engine.evaluate("event.id + 1", ctx) == n + 1
    assert len(compiled) == 3
    # A different source compiles again.
    engine.render_value("{{ event.id * 2 }}", {"event": {"id": 1}})
    assert len(compiled) == 4


def test_engines_do_not_share_state() -> None:
    one, two = TemplateEngine(), TemplateEngine()
    one.environment.filters["shout"] = lambda s: f"{s}!"
    assert one.render_value("{{ 'hi' | shout }}", {}) == "hi!"
    with pytest.raises(TemplateError):
        two.render_value("{{ 'hi' | shout }}", {})


# -- resolve_action_params ----------


@pytest.mark.parametrize("params", [None, {}, [], ""])
def test_null_or_empty_params_give_empty_object(
    engine: TemplateEngine, ctx: dict[str, Any], params: Any
) -> None:
    assert resolve_action_params(engine, params, ctx) == {}


@pytest.mark.parametrize("params", [["{{ event.id }}"], "{{ event.id }}", 5, "text"])
def test_non_object_result_gives_empty_object(
    engine: TemplateEngine, ctx: dict[str, Any], params: Any
) -> None:
    assert resolve_action_params(engine, params, ctx) == {}


def test_resolve_action_params(engine: TemplateEngine, ctx: dict[str, Any]) -> None:
    params = {
        "channel": "{{ pack.config.channel }}",
        "count": "{{ event.payload.count }}",
        "text": "{{ event.payload.host }} is down (event {{ event.id }})",
        "first": "{{ event.payload.meta.tags.0 }}",
        "absent": "{{ event.payload.absent }}",
        "fixed": 10,
    }
    assert resolve_action_params(engine, params, ctx) == {
        "channel": "#ops",
        "count": 42,
        "text": "web-1 is down (event 17)",
        "first": "a",
        "absent": None,
        "fixed": 10,
    }


def test_whole_object_template_is_kept_when_it_resolves_to_an_object(
    engine: TemplateEngine, ctx: dict[str, Any]
) -> None:
    assert resolve_action_params(engine, "{{ event.payload.meta }}", ctx) == {
        "region": "eu",
        "tags": ["a", "b"],
    }


def test_resolve_action_params_propagates_template_errors(
    engine: TemplateEngine, ctx: dict[str, Any]
) -> None:
    with pytest.raises(TemplateError):
        resolve_action_params(engine, {"x": "{{ ().__class__ }}"}, ctx)
