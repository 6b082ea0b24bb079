"""Parsing, legacy normalisation, validation and serialisation of workflow documents."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from attune.errors import ValidationFailed
from attune.workflow.spec import (
    RetrySpec,
    TransitionSpec,
    WorkflowValidationError,
    parse_workflow,
    to_document,
    validate_workflow,
)


def doc(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "ref": "p.w",
        "label": "W",
        "version": "1.0.0",
        "tasks": [{"name": "a", "action": "p.a"}],
    }
    base.update(overrides)
    return base


def errors_of(document: dict[str, Any], **kwargs: Any) -> list[str]:
    with pytest.raises(WorkflowValidationError) as caught:
        parse_workflow(document, **kwargs)
    assert isinstance(caught.value, ValidationFailed)
    return caught.value.errors


def test_minimal_document_defaults() -> None:
    spec = parse_workflow(doc())
    task = spec.tasks[0]
    assert (task.type, task.input, task.next, task.retry) == ("action", {}, [], None)
    assert spec.vars == {} and spec.tags == []


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"ref": None}, "ref is required"),
        ({"label": "x" * 256}, "label must be 1–255 characters"),
        ({"version": 1.0}, "version must be a string"),
        ({"version": "v" * 51}, "version must be 1–50 characters"),
        ({"tasks": []}, "tasks must be a non-empty list"),
        ({"vars": "x"}, "vars must be a mapping"),
        ({"output_map": {"a": 1}}, "output_map.a must be a template string"),
        ({"tags": "x"}, "tags must be a list of strings"),
    ],
)
def test_top_level_rules(overrides: dict[str, Any], expected: str) -> None:
    document = doc(**overrides)
    if overrides.get("ref", "") is None:
        del document["ref"]
    assert any(expected in error for error in errors_of(document))


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        ({"name": ""}, "name must be a string of 1–255 characters"),
        ({"name": "b"}, "a task of type 'action' needs an action"),
        ({"name": "b", "type": "workflow"}, "a task of type 'workflow' needs an action"),
        ({"name": "b", "type": "parallel"}, "a parallel task needs a non-empty tasks list"),
        ({"name": "b", "type": "loop", "action": "p.a"}, "type must be one of"),
        ({"name": "b", "action": "p.a", "with_items": [1, 2]}, "a literal list is not allowed"),
        ({"name": "b", "action": "p.a", "next": {"do": ["a"]}}, "next must be a list"),
        ({"name": "b", "action": "p.a", "next": [{"do": "a"}]}, "next[0].do must be a list"),
        ({"name": "b", "action": "p.a", "next": [{"do": ["x"]}]}, "next[0].do references unknown task 'x'"),
        ({"name": "b", "action": "p.a", "next": [{"publish": [{"v": 1}]}]}, "quote literals"),
        ({"name": "b", "action": "p.a", "retry": {"count": 3}}, "retry.delay is required"),
        ({"name": "b", "action": "p.a", "retry": {"delay": 3}}, "retry.count is required"),
        ({"name": "b", "action": "p.a", "retry": {"count": 101, "delay": 1}}, "integer 1–100"),
        ({"name": "b", "action": "p.a", "retry": {"count": 1, "delay": 5, "max_delay": 2}}, "max_delay"),
        ({"name": "b", "action": "p.a", "concurrency": 0}, "concurrency must be a positive integer"),
        ({"name": "b", "action": "p.a", "join": "some"}, "join must be a positive integer or 'all'"),
        ({"name": "b", "action": "p.a", "on_success": "x"}, "on_success references unknown task 'x'"),
        ({"name": "b", "action": "p.a", "decision": [{"next": "a"}]}, "when is required"),
        ({"name": "a", "action": "p.a"}, "duplicate task name 'a'"),
    ],
)
def test_task_rules_name_task_and_field(task: dict[str, Any], expected: str) -> None:
    errors = errors_of(doc(tasks=[{"name": "a", "action": "p.a"}, task]))
    assert any(expected in error for error in errors), errors
    if task.get("name"):
        assert any(error.startswith("tasks[1]") or "duplicate" in error for error in errors)


def test_error_message_names_task_and_field() -> None:
    errors = errors_of(
        doc(
            tasks=[
                {"name": "a", "action": "p.a"},
                {"name": "notify", "action": "p.n", "next": [{"do": ["x"]}]},
            ]
        )
    )
    assert errors == ["tasks[1] (notify): next[0].do references unknown task 'x'"]


def test_all_problems_are_reported_together() -> None:
    errors = errors_of({"tasks": [{"name": "a"}, {"name": "b", "action": "p.b", "concurrency": -1}]})
    assert len(errors) >= 4


def test_parallel_subtasks_may_only_target_siblings() -> None:
    document = doc(
        tasks=[
            {"name": "a", "action": "p.a"},
            {
                "name": "g",
                "type": "parallel",
                "tasks": [{"name": "s1", "action": "p.s", "next": [{"do": ["a"]}]}],
            },
        ]
    )
    assert errors_of(document) == ["tasks[1] (g).tasks[0] (s1): next[0].do references unknown task 'a'"]


def test_ref_must_match_expected_ref() -> None:
    assert "does not match" in errors_of(doc(), ref="p.other")[0]
    document = doc()
    del document["ref"]
    assert parse_workflow(document, ref="p.file").ref == "p.file"


def test_vars_list_form_is_merged_in_order() -> None:
    spec = parse_workflow(doc(vars=[{"a": 1}, {"b": "{{ not rendered }}"}, {"a": 2}]))
    assert spec.vars == {"a": 2, "b": "{{ not rendered }}"}


def test_unknown_keys_are_ignored() -> None:
    spec = parse_workflow(doc(name="x", metadata={}, input=["a"], output_schema={}))
    assert spec.ref == "p.w"


def test_transition_publish_forms() -> None:
    spec = parse_workflow(
        doc(
            tasks=[{"name": "a", "action": "p.a", "next": [{"publish": ["raw", {"x": "{{ 1 }}", "y": "t"}]}]}]
        )
    )
    assert spec.tasks[0].next == [
        TransitionSpec(publish=[("raw", "{{ result() }}"), ("x", "{{ 1 }}"), ("y", "t")])
    ]


ROTATE_TASKS = yaml.safe_load("""
- name: issue_new_key
  action: vault.issue_key
  publish:
    - new_key_id: "{{ result().data.key_id }}"
  on_success: revoke_old_keys
  on_failure: alert
- name: revoke_old_keys
  action: vault.revoke_keys
  on_complete: audit
- {name: alert, action: core.echo}
- {name: audit, action: core.noop}
""")


def test_legacy_normalisation_matches_spec_example() -> None:
    normalised = to_document(parse_workflow(doc(tasks=ROTATE_TASKS)))
    assert normalised["tasks"][0]["next"] == [
        {
            "when": "{{ succeeded() }}",
            "publish": [{"new_key_id": "{{ result().data.key_id }}"}],
            "do": ["revoke_old_keys"],
        },
        {"when": "{{ failed() }}", "do": ["alert"]},
    ]
    assert normalised["tasks"][1]["next"] == [{"do": ["audit"]}]
    for task in normalised["tasks"]:
        assert not {"on_success", "on_failure", "on_complete", "publish"} & task.keys()


def test_legacy_order_and_publish_placement() -> None:
    tasks = [
        {"name": "a", "action": "p.a", "on_timeout": "b", "on_complete": "b", "publish": ["x"]},
        {"name": "b", "action": "p.b", "publish": ["y"]},
    ]
    spec = parse_workflow(doc(tasks=tasks))
    first = spec.tasks[0].next
    assert [t.when for t in first] == [None, "{{ timed_out() }}"]
    assert first[0].publish == [("x", "{{ result() }}")]  # no succeeded() transition: the first one
    assert spec.tasks[1].next == [TransitionSpec(when="{{ succeeded() }}", publish=[("y", "{{ result() }}")])]


def test_next_wins_over_legacy_fields() -> None:
    tasks = [
        {"name": "a", "action": "p.a", "next": [{"do": ["b"]}], "on_failure": "b", "publish": ["x"]},
        {"name": "b", "action": "p.b"},
    ]
    assert parse_workflow(doc(tasks=tasks)).tasks[0].next == [TransitionSpec(do=["b"])]


def test_decision_default_fires_only_when_no_branch_did() -> None:
    tasks = [
        {
            "name": "a",
            "action": "p.a",
            "decision": [
                {"when": "{{ result().data.x == 1 }}", "next": "b"},
                {"default": True, "next": "c"},
                {"when": "{{ vars.y }}", "next": "c"},
            ],
        },
        {"name": "b", "action": "p.b"},
        {"name": "c", "action": "p.c"},
    ]
    transitions = parse_workflow(doc(tasks=tasks)).tasks[0].next
    assert [t.when for t in transitions] == [
        "{{ result().data.x == 1 }}",
        "{{ not (result().data.x == 1) and not (vars.y) }}",
        "{{ vars.y }}",
    ]
    assert (
        "more than one default"
        in errors_of(
            doc(
                tasks=[
                    *tasks[:1],
                    {**tasks[0], "name": "z", "decision": [{"default": True, "next": "b"}] * 2},
                    *tasks[1:],
                ]
            )
        )[0]
    )


def test_chart_meta_round_trips_and_is_never_null() -> None:
    document = doc(
        tasks=[
            {
                "name": "a",
                "action": "p.a",
                "__chart_meta__": {"position": {"x": 1, "y": 2}},
                "next": [
                    {
                        "when": "{{ succeeded() }}",
                        "do": ["b"],
                        "__chart_meta__": {"label": "ok", "color": "#22c55e"},
                    }
                ],
            },
            {
                "name": "b",
                "action": "p.b",
                "retry": {"count": 2, "delay": 1, "backoff": "linear", "on_error": "{{ true }}"},
            },
            {"name": "g", "type": "parallel", "tasks": [{"name": "s", "action": "p.s"}], "join": "all"},
        ],
        output_map={"o": "{{ vars.x }}"},
        description="d",
    )
    spec = parse_workflow(copy.deepcopy(document))
    stored = to_document(spec)
    assert stored["tasks"][0]["__chart_meta__"] == {"position": {"x": 1, "y": 2}}
    assert stored["tasks"][0]["next"][0]["__chart_meta__"] == {"label": "ok", "color": "#22c55e"}
    assert "__chart_meta__" not in stored["tasks"][1]
    assert parse_workflow(stored) == spec
    assert to_document(parse_workflow(stored)) == stored


def test_retry_wait_formulae() -> None:
    assert [RetrySpec(3, 10).wait(n) for n in range(3)] == [10, 10, 10]
    assert [RetrySpec(3, 10, "linear").wait(n) for n in range(3)] == [10, 20, 30]
    assert [RetrySpec(4, 10, "exponential", 60).wait(n) for n in range(4)] == [10, 20, 40, 60]


def test_graph_lookups() -> None:
    spec = parse_workflow(
        doc(
            tasks=[
                {"name": "a", "action": "p.a", "next": [{"do": ["b"]}]},
                {"name": "b", "action": "p.b"},
                {"name": "c", "action": "p.c"},
            ]
        )
    )
    assert spec.entry_points() == ["a", "c"]
    assert spec.inbound["b"] == ["a"]


# -- semantic validation ----------------------------------------------------------------------------


def test_sound_workflow_has_no_problems() -> None:
    assert validate_workflow(parse_workflow(doc())) == []


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"tasks": [{"name": "index", "action": "p.a"}]}, "'index' is a reserved word"),
        ({"tasks": [{"name": "a", "action": "nodots"}]}, "invalid action ref 'nodots'"),
        ({"tasks": [{"name": "a", "action": "p."}]}, "invalid action ref 'p.'"),
        ({"vars": {"bad name": 1}}, "variable names use letters"),
        (
            {
                "tasks": [
                    {"name": "a", "action": "p.a"},
                    {"name": "b", "action": "p.b", "next": [{"do": ["c"]}]},
                    {"name": "c", "action": "p.c", "next": [{"do": ["b"]}]},
                ]
            },
            "tasks[1] (b): Unreachable task",
        ),
    ],
)
def test_semantic_problems(overrides: dict[str, Any], expected: str) -> None:
    problems = validate_workflow(parse_workflow(doc(**overrides)))
    assert any(expected in problem for problem in problems), problems


def test_a_workflow_with_no_entry_task_is_refused_by_the_parser() -> None:
    # Not a warning any more: such a workflow would "complete" having run nothing.
    with pytest.raises(WorkflowValidationError, match="no entry task"):
        parse_workflow(doc(tasks=[{"name": "a", "action": "p.a", "next": [{"do": ["a"]}]}]))


def test_known_actions_callback() -> None:
    spec = parse_workflow(doc(tasks=[{"name": "a", "action": "p.a"}, {"name": "b", "action": "p.gone"}]))
    assert validate_workflow(spec, known_actions=lambda ref: ref == "p.a") == [
        "tasks[1] (b): unknown action 'p.gone'"
    ]
