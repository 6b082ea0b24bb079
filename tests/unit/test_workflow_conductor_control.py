"""Rehearsal tests of the pure conductor (docs/workflows.md): cancel, pause, resume and re-run of a
workflow, and output maps.
"""

from __future__ import annotations

from attune.workflow.conductor import (
    Cancel,
    CancelTasks,
    Pause,
    Paused,
    Rerun,
    Resume,
    TaskFinished,
    TimerFired,
)
from tests.unit.conductor_rehearsal import (
    PARALLEL,
    Rehearsal,
    bad,
    items_flow,
    ok,
)

TWO = """
ref: t.two
label: t
version: "1"
tasks:
  - {name: a, action: t.a, next: [{do: [c]}]}
  - {name: b, action: t.b, delay: 5}
  - {name: c, action: t.c}
"""


def test_cancel_cancels_running_children_then_finishes() -> None:
    r = Rehearsal(TWO)
    r.send(Cancel())
    assert r.last == [CancelTasks([("a", None)])]
    assert r.state.tasks["b"]["status"] == "cancelled"  # delayed task dropped
    r.done("a", status="cancelled")
    assert r.finish().status == "cancelled"
    assert r.send(TaskFinished("a", None, "completed", ok())) == []


def test_cancel_with_nothing_running_finishes_at_once() -> None:
    r = Rehearsal(TWO)
    r.done("a")
    r.done("c")
    r.send(Cancel())
    assert r.finish().status == "cancelled"


def test_cancel_with_items_cancels_in_flight_items_only() -> None:
    r = items_flow("concurrency: 2", things=[1, 2, 3])
    r.send(Cancel())
    assert r.last == [CancelTasks([("each", 0), ("each", 1)])]
    r.done("each", index=0, status="cancelled")
    assert r.last == []
    r.done("each", index=1)
    assert r.finish().status == "cancelled"


def test_pause_stops_dispatch_until_resume() -> None:
    r = Rehearsal(TWO)
    r.send(Pause())
    assert r.last == [] and r.state.status == "pausing"
    r.done("a")  # recorded, c is queued
    assert r.runs() == [] and r.last == [Paused()]
    assert r.state.status == "paused"
    r.send(TimerFired("b", None, "delay"))
    assert r.last == []
    r.send(Resume())
    assert sorted(r.runs()) == ["b", "c"]
    r.done("b")
    r.done("c")
    assert r.finish().status == "completed"


def test_pause_holds_with_items_window() -> None:
    r = items_flow("concurrency: 1", things=[1, 2])
    r.send(Pause())
    r.done("each", index=0)
    assert r.last == [Paused()]
    r.send(Resume())
    assert r.runs() == ["each[1]"]


def test_rerun_failed_task_keeps_successful_results() -> None:
    text = """
ref: t.rerun
label: t
version: "1"
tasks:
  - {name: a, action: t.a, next: [{when: "{{ succeeded() }}", do: [c]}]}
  - {name: b, action: t.b, next: [{do: [c]}]}
  - {name: c, action: t.c, join: all}
"""
    r = Rehearsal(text)
    r.done("b", ok(v="b"))
    r.done("a", bad(), status="failed")
    assert r.finish().status == "failed"
    r.send(Rerun(None))
    assert r.runs() == ["a"]
    assert r.state.tasks["b"]["result"] == ok(v="b")
    r.done("a")
    assert r.runs() == ["c"]
    r.done("c")
    assert r.finish().status == "completed"


def test_rerun_of_a_task_inside_a_parallel_block_reruns_the_block() -> None:
    text = PARALLEL.replace('      - when: "{{ failed() }}"\n        do: [cleanup]\n', "").replace(
        "  - {name: cleanup, action: t.cleanup}\n", ""
    )
    assert "cleanup" not in text
    r = Rehearsal(text)
    r.done("p2", bad(), status="failed")
    r.done("p1")
    assert r.finish().status == "failed"
    r.send(Rerun(["p2"]))
    assert sorted(r.runs()) == ["p1", "p2"]
    r.done("p1")
    r.done("p2")
    r.done("p3")
    assert r.runs() == ["after"]


def test_rerun_with_items_reruns_only_failed_items() -> None:
    r = Rehearsal(
        """
ref: t.items_rerun
label: t
version: "1"
tasks:
  - name: each
    action: t.each
    with_items: "{{ parameters.things }}"
    input: {value: "{{ item }}"}
    next: [{when: "{{ succeeded() }}", publish: [{out: "{{ result() }}"}], do: [ok]}]
  - {name: ok, action: t.ok}
""",
        {"things": [1, 2, 3]},
    )
    r.done("each", ok(v=1), index=0)
    r.done("each", bad(), index=1, status="failed")
    r.done("each", ok(v=3), index=2)
    assert r.finish().status == "failed"
    r.send(Rerun(["each"]))
    assert r.runs() == ["each[1]"]
    assert r.run_of("each", 1).input == {"value": 2}
    r.done("each", ok(v=2), index=1)
    assert r.runs() == ["ok"]
    assert [x["output"] for x in r.state.vars["out"]["results"]] == [ok(v=1), ok(v=2), ok(v=3)]


def test_output_map_entry_that_fails_is_omitted() -> None:
    r = Rehearsal("""
ref: t.out
label: t
version: "1"
vars: {a: 1}
tasks: [{name: x, action: t.x}]
output_map:
  a: "{{ vars.a }}"
  broken: "{{ 1 / 0 }}"
  text: "a is {{ a }}"
""")
    r.done("x")
    assert r.finish().result == {"succeeded": True, "output": {"a": 1, "text": "a is 1"}}
    assert any("broken" in warning for warning in r.state.warnings)
