"""Rehearsal tests of the pure conductor (docs/workflows.md): transitions and publish, joins, parallel
blocks, retry, delay and when gates.
"""

from __future__ import annotations

import pytest

from attune.workflow import conductor
from attune.workflow.conductor import (
    RunTask,
    StartTimer,
    TaskFinished,
    TimerFired,
)
from attune.workflow.spec import WorkflowValidationError
from tests.unit.conductor_rehearsal import (
    ENGINE,
    PARALLEL,
    Rehearsal,
    bad,
    ok,
    spec_of,
)

# -- transitions and publish -----------------------------------------------------------------------

SIMPLE = """
ref: t.simple
label: t
version: "1"
vars: {n: 0}
tasks:
  - name: a
    action: t.a
    next:
      - when: "{{ succeeded() }}"
        publish:
          - count: "{{ result().data.count }}"
          - items: "{{ result().data.items }}"
          - flag: "{{ result().data.count > 1 }}"
          - text: "n={{ result().data.count }}"
          - raw
        do: [b]
      - when: "{{ vars.count == 3 }}"
        do: [c, b]
      - when: "{{ failed() }}"
        do: [c]
  - name: b
    action: t.b
    input: {count: "{{ count }}", items: "{{ vars.items }}", flag: "{{ flag }}", text: "{{ text }}"}
  - name: c
    action: t.c
"""


def test_all_firing_transitions_apply_in_order_with_typed_publish() -> None:
    r = Rehearsal(SIMPLE)
    r.done("a", ok(count=3, items=[1, 2]))
    # Both the succeeded() and the custom transition fire; targets are merged without duplicates.
    assert r.runs() == ["b", "c"]
    assert r.run_of("b").input == {"count": 3, "items": [1, 2], "flag": True, "text": "n=3"}
    assert r.state.vars["raw"] == ok(count=3, items=[1, 2])


def test_unhandled_failure_fails_workflow_after_running_tasks_end() -> None:
    text = """
ref: t.par
label: t
version: "1"
tasks:
  - {name: a, action: t.a, next: [{when: "{{ succeeded() }}", do: [c]}]}
  - {name: b, action: t.b, next: [{do: [d]}]}
  - {name: c, action: t.c}
  - {name: d, action: t.d}
"""
    r = Rehearsal(text)
    assert r.runs() == ["a", "b"]
    r.done("a", bad("disk full"), status="failed")
    assert r.last == []  # b still runs
    r.done("b")
    assert r.runs() == []  # nothing new starts after an unhandled failure
    finish = r.finish()
    assert finish.status == "failed"
    assert finish.error == "Workflow failed: 1 task(s) failed: a"
    assert finish.result["failed_tasks"] == ["a"]
    assert finish.result["succeeded"] is False


def test_no_entry_point_is_refused_before_it_can_run() -> None:
    # It used to "complete" having run nothing; the parser now refuses it (docs/workflows.md).
    with pytest.raises(WorkflowValidationError, match="no entry task"):
        Rehearsal("""
ref: t.loop
label: t
version: "1"
tasks:
  - {name: a, action: t.a, next: [{do: [b]}]}
  - {name: b, action: t.b, next: [{do: [a]}]}
""")


def test_loop_reruns_finished_task_and_is_bounded() -> None:
    text = """
ref: t.loop
label: t
version: "1"
vars: {i: 0}
tasks:
  - name: init
    action: t.a
    next: [{do: [step]}]
  - name: step
    action: t.b
    next:
      - when: "{{ result().data.more }}"
        do: [step]
"""
    r = Rehearsal(text)
    r.done("init")
    r.done("step", ok(more=True))
    assert r.runs() == ["step"]  # a transition into a finished task starts it again
    r.done("step", ok(more=False))
    assert r.finish().status == "completed"

    spec = spec_of(text)
    state, _ = conductor.start(spec, {}, engine=ENGINE, max_runs=5)
    state, _ = conductor.advance(spec, state, TaskFinished("init", None, "completed", ok()), engine=ENGINE)
    while not state.finished:
        state, _ = conductor.advance(
            spec, state, TaskFinished("step", None, "completed", ok(more=True)), engine=ENGINE
        )
    assert state.status == "failed"
    assert state.runs == 6
    assert "task runs" in state.errors[0]["error"]


# -- join ------------------------------------------------------------------------------------------

JOIN = """
ref: t.join
label: t
version: "1"
tasks:
  - {name: a, action: t.a, next: [{do: [z]}]}
  - {name: b, action: t.b, next: [{do: [z]}]}
  - {name: c, action: t.c, next: [{when: "{{ succeeded() }}", do: [z]}]}
  - {name: z, action: t.z, join: JOIN}
"""


def test_join_all_waits_for_every_inbound_transition() -> None:
    r = Rehearsal(JOIN.replace("JOIN", "all"))
    r.done("a")
    r.done("b", bad(), status="failed")  # outcome does not matter for a join
    assert r.runs() == []
    r.done("c")
    assert r.runs() == ["z"]


def test_join_count_starts_after_n_arrivals_once() -> None:
    r = Rehearsal(JOIN.replace("JOIN", "2"))
    r.done("a")
    assert r.runs() == []
    r.done("b")
    assert r.runs() == ["z"]
    r.done("c")
    assert r.runs() == []  # z is running; not started twice


def test_without_join_a_running_target_is_not_started_twice() -> None:
    r = Rehearsal(JOIN.replace("join: JOIN", "input: {}"))
    r.done("a")
    assert r.runs() == ["z"]
    r.done("b")
    assert r.runs() == []


# -- parallel --------------------------------------------------------------------------------------


def test_parallel_runs_subtasks_and_aggregates() -> None:
    r = Rehearsal(PARALLEL)
    assert r.runs() == ["p1", "p2"]
    assert r.run_of("p2").input == {"n": 2}
    r.done("p1", ok(v=1))
    assert r.runs() == ["p3"]
    r.done("p2", ok(v=2))
    assert r.runs() == []
    r.done("p3", ok(v=3))
    results = r.run_of("after").input["r"]
    assert [(x["task"], x["status"]) for x in results] == [
        ("p1", "completed"),
        ("p2", "completed"),
        ("p3", "completed"),
    ]
    assert results[1]["output"] == ok(v=2)


def test_parallel_fails_when_a_subtask_fails_unhandled() -> None:
    r = Rehearsal(PARALLEL)
    r.done("p2", bad(), status="failed")
    r.done("p1")
    # Fail-fast inside the group: p3 does not start; the group fails and its failed() fires.
    assert r.runs() == ["cleanup"]
    assert r.state.tasks["fan"]["status"] == "failed"
    assert "p3" not in r.state.tasks


# -- retry, delay, when ----------------------------------------------------------------------------

RETRY = """
ref: t.retry
label: t
version: "1"
tasks:
  - name: a
    action: t.a
    retry: RETRY
    next: [{when: "{{ failed() }}", do: [handle]}]
  - {name: handle, action: t.h}
"""


@pytest.mark.parametrize(
    ("retry", "waits"),
    [
        ("{count: 3, delay: 5}", [5, 5, 5]),
        ("{count: 3, delay: 5, backoff: linear}", [5, 10, 15]),
        ("{count: 4, delay: 5, backoff: exponential, max_delay: 30}", [5, 10, 20, 30]),
        ("{count: 4, delay: 5, backoff: exponential}", [5, 10, 20, 40]),
    ],
)
def test_retry_backoff_timers(retry: str, waits: list[float]) -> None:
    r = Rehearsal(RETRY.replace("RETRY", retry))
    seen = []
    for _ in waits:
        r.done("a", bad(), status="failed")
        (timer,) = r.last
        assert isinstance(timer, StartTimer)
        seen.append(timer.seconds)
        r.send(TimerFired("a", None, "retry"))
    assert seen == waits
    r.done("a", bad(), status="failed")  # retries exhausted: transitions see the final attempt
    assert r.runs() == ["handle"]


def test_retry_zero_delay_reruns_immediately_and_success_stops() -> None:
    r = Rehearsal(RETRY.replace("RETRY", "{count: 2, delay: 0}"))
    r.done("a", bad(), status="timeout")
    assert r.runs() == ["a"] and r.run_of("a").attempt == 2
    r.done("a")
    assert r.finish().status == "completed"


def test_stale_timer_is_ignored() -> None:
    r = Rehearsal(RETRY.replace("RETRY", "{count: 2, delay: 1}"))
    assert r.send(TimerFired("a", None, "retry")) == []


def test_when_gate_skips_without_transitions() -> None:
    r = Rehearsal("""
ref: t.when
label: t
version: "1"
parameters: {go: {type: boolean, default: false}}
tasks:
  - {name: a, action: t.a, when: "{{ parameters.go }}", next: [{do: [b]}]}
  - {name: b, action: t.b}
  - {name: c, action: t.c, when: "{{ not parameters.go }}"}
""")
    assert r.runs() == ["c"]
    assert r.state.tasks["a"]["status"] == "skipped"
    r.done("c")
    assert r.finish().status == "completed"


def test_input_render_error_fails_task_without_running() -> None:
    r = Rehearsal("""
ref: t.err
label: t
version: "1"
tasks:
  - {name: a, action: t.a, input: {x: "{{ 1 / 0 }}"}, next: [{when: "{{ failed() }}", do: [b]}]}
  - {name: b, action: t.b, input: {why: "{{ task.a.error }}"}}
""")
    assert r.runs() == ["b"]
    assert "ZeroDivisionError" in r.run_of("b").input["why"]


def test_nested_workflow_is_a_run_task_of_its_ref() -> None:
    r = Rehearsal("""
ref: t.outer
label: t
version: "1"
tasks:
  - {name: inner, type: workflow, action: t.inner_flow, input: {x: 1}, timeout: 30}
""")
    assert r.last == [RunTask("inner", None, "t.inner_flow", {"x": 1}, 30, 1)]
    r.done("inner", {"succeeded": True, "output": {"y": 2}})
    assert r.finish().status == "completed"
