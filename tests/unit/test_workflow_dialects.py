"""Dialect front ends: detection, and each dialect's documents turned into the conductor's spec."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from attune.domain.templates import TemplateEngine
from attune.workflow import conductor, dialects
from attune.workflow.conductor import Finish, RunTask, TaskFinished
from attune.workflow.spec import WorkflowValidationError, parse_workflow, to_document

ENGINE = TemplateEngine()


@pytest.mark.parametrize(
    ("doc", "runner", "expected"),
    [
        ({"ref": "p.w", "tasks": [{"name": "a", "action": "p.x"}]}, None, "attune"),
        ({"version": 1.0, "tasks": {"a": {"action": "p.x"}}}, None, "orquesta"),
        ({"tasks": {"a": {"action": "p.x"}}}, "orquesta", "orquesta"),
        ({"tasks": {"a": {"action": "p.x", "on-success": ["b"]}, "b": {"action": "p.x"}}}, None, "task-map"),
        ({"chain": [{"name": "a", "ref": "p.x"}]}, None, "action-chain"),
        ({"chain": [{"name": "a", "ref": "p.x"}]}, "action-chain", "action-chain"),
    ],
)
def test_dialect_detection(doc: dict[str, Any], runner: str | None, expected: str) -> None:
    assert dialects.detect(doc, runner) == expected


def test_an_orquesta_file_without_ref_label_or_list_tasks_parses() -> None:
    """The StackStorm user's first try: ``sequential.yaml`` gave "4 problems" before."""
    doc = yaml.safe_load(
        """
version: 1.0
description: A basic sequential workflow.
input:
  - name
vars:
  - greeting: null
output:
  - greeting: <% ctx().greeting %>
tasks:
  task1:
    action: core.echo message=<% ctx().name %>
    next:
      - when: <% succeeded() %>
        publish: greeting=<% result().stdout %>
        do: task2
  task2:
    action: core.echo
"""
    )
    spec = parse_workflow(doc, ref="examples.sequential")
    assert (spec.ref, spec.label, spec.dialect) == ("examples.sequential", "Sequential", "orquesta")
    assert [task.name for task in spec.tasks] == ["task1", "task2"]
    assert parse_workflow(to_document(spec), ref="examples.sequential") == spec


def test_orquesta_problems_are_all_reported() -> None:
    doc = {"version": 1.0, "tasks": {"a": {"action": 5, "bogus": 1, "next": [{"do": "missing"}]}}}
    with pytest.raises(WorkflowValidationError) as caught:
        parse_workflow(doc, ref="p.w")
    text = "; ".join(caught.value.errors)
    assert "unknown task field(s): bogus" in text
    assert "action must be a string" in text
    with pytest.raises(WorkflowValidationError, match="unknown task 'missing'"):
        parse_workflow({"version": 1.0, "tasks": {"a": {"next": [{"do": "missing"}]}}}, ref="p.w")


TASK_MAP = """
version: 1.0
input:
  - target
vars:
  - attempts: 0
tasks:
  fetch:
    action: core.http
    input: {url: "{{ parameters.target }}"}
    publish:
      - body: "{{ result().data.body }}"
    on-success: [store]
    on-error: [alert]
  store:
    action: core.noop
    on-complete: [done]
  alert:
    action: core.echo
  done:
    action: core.noop
output:
  body: "{{ vars.body }}"
"""


def test_the_task_map_form_runs_with_attune_rules() -> None:
    spec = parse_workflow(yaml.safe_load(TASK_MAP), ref="ops.fetch")
    assert spec.dialect == "attune"
    assert spec.parameters == {"target": {}}
    assert spec.vars == {"attempts": 0}
    fetch = spec.by_name["fetch"]
    assert [(t.when, t.do) for t in fetch.next] == [
        ("{{ succeeded() }}", ["store"]),
        ("{{ failed() }}", ["alert"]),
    ]
    assert fetch.next[0].publish == [("body", "{{ result().data.body }}")]
    state, commands = conductor.start(spec, {"target": "http://x"}, engine=ENGINE)
    assert [c.input for c in commands if isinstance(c, RunTask)] == [{"url": "http://x"}]
    result = {"succeeded": True, "data": {"body": "hello"}}
    state, commands = conductor.advance(
        spec, state, TaskFinished("fetch", None, "completed", result), engine=ENGINE
    )
    assert [c.task for c in commands if isinstance(c, RunTask)] == ["store"]
    state, commands = conductor.advance(
        spec, state, TaskFinished("store", None, "completed", {}), engine=ENGINE
    )
    state, commands = conductor.advance(
        spec, state, TaskFinished("done", None, "completed", {}), engine=ENGINE
    )
    finish = next(c for c in commands if isinstance(c, Finish))
    assert finish.result["output"] == {"body": "hello"}


CHAIN = """
vars:
  greeting: "hello {{ who }}"
chain:
  - name: first
    ref: core.local
    parameters:
      cmd: "echo {{ greeting }}"
    on-success: second
    on-failure: report
  - name: second
    ref: core.local
    parameters:
      cmd: "echo {{ first.stdout }} again"
    publish:
      final: "{{ second.stdout }}"
  - name: report
    ref: core.echo
    parameters:
      message: "first failed: {{ first.stderr }}"
  - name: orphan
    ref: core.noop
default: first
"""


def test_an_action_chain_reaches_node_results_by_name() -> None:
    spec = parse_workflow(yaml.safe_load(CHAIN), ref="st2.chain", runner_type="action-chain")
    assert spec.dialect == "action-chain"
    assert [task.name for task in spec.tasks] == ["first", "second", "report"]  # orphan never runs
    state, commands = conductor.start(spec, {"who": "world"}, engine=ENGINE)
    assert [c.input for c in commands if isinstance(c, RunTask)] == [{"cmd": "echo hello world"}]
    first = {"stdout": "hello world", "stderr": "", "return_code": 0, "succeeded": True}
    state, commands = conductor.advance(
        spec, state, TaskFinished("first", None, "completed", first), engine=ENGINE
    )
    assert [c.input for c in commands if isinstance(c, RunTask)] == [{"cmd": "echo hello world again"}]
    second = {"stdout": "hello world again", "return_code": 0, "succeeded": True}
    state, commands = conductor.advance(
        spec, state, TaskFinished("second", None, "completed", second), engine=ENGINE
    )
    finish = next(c for c in commands if isinstance(c, Finish))
    assert finish.status == "completed"
    assert state.vars["final"] == "hello world again"


def test_an_action_chain_failure_without_on_failure_fails_the_chain() -> None:
    spec = parse_workflow(yaml.safe_load(CHAIN), ref="st2.chain", runner_type="action-chain")
    state, _ = conductor.start(spec, {"who": "x"}, engine=ENGINE)
    state, _ = conductor.advance(
        spec, state, TaskFinished("first", None, "completed", {"stdout": "a"}), engine=ENGINE
    )
    bad = {"stdout": "", "stderr": "boom", "return_code": 1, "succeeded": False}
    state, commands = conductor.advance(
        spec, state, TaskFinished("second", None, "failed", bad), engine=ENGINE
    )
    finish = next(c for c in commands if isinstance(c, Finish))
    assert finish.status == "failed"
