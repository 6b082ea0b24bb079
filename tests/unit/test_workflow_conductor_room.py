"""The conductor's ``room``: a step starts at most that many tasks; the rest wait, unwritten,
until a ``Continue`` (docs/performance.md "In-process workflow tasks")."""

from __future__ import annotations

from attune.workflow import conductor
from attune.workflow.conductor import Cancel, CancelTasks, Continue, Pause, Resume
from tests.unit.conductor_rehearsal import Rehearsal, items_flow

CHAIN = """
ref: t.chain
label: t
version: "1"
tasks:
  - {name: a, action: t.a, next: [{do: [b]}]}
  - {name: b, action: t.b, input: {n: "{{ 2 }}"}, next: [{do: [c]}]}
  - {name: c, action: t.c}
"""


def held(r: Rehearsal) -> bool:
    return conductor.held(r.spec, r.state)


def test_items_past_the_room_are_not_taken_until_continue() -> None:
    r = items_flow(things=list("abcde"), room=2)
    assert r.runs() == ["each[0]", "each[1]"]
    record = r.state.tasks["each"]
    # Nothing is recorded for the held items: no window entry, nothing to write or cancel.
    assert record["next"] == 2 and record["waiting"] == [] and not r.state.queued
    assert held(r)
    r.done("each", index=0, room=0)
    assert r.runs() == [] and held(r)
    assert r.send(Continue(), room=2) and r.runs() == ["each[2]", "each[3]"]
    r.send(Continue(), room=5)
    assert r.runs() == ["each[4]"] and not held(r)
    for index in (1, 2, 3, 4):
        r.done("each", index=index)
    assert r.runs() == ["ok"]
    assert [entry["index"] for entry in r.state.vars["out"]["results"]] == [0, 1, 2, 3, 4]


def test_items_waiting_for_a_concurrency_slot_are_not_held_by_the_room() -> None:
    r = items_flow("concurrency: 2", things=list("abcde"), room=10)
    assert r.runs() == ["each[0]", "each[1]"] and not held(r)


def test_a_task_past_the_room_waits_pending_and_continue_starts_it() -> None:
    r = Rehearsal(CHAIN, room=1)
    assert r.runs() == ["a"]
    r.done("a", room=0)
    assert r.runs() == [] and held(r)
    assert r.state.tasks["b"]["status"] == "pending"
    r.send(Continue(), room=1)
    assert r.runs() == ["b"] and r.run_of("b").input == {"n": 2} and not held(r)
    r.done("b", room=5)
    assert r.runs() == ["c"]
    r.done("c")
    assert r.finish().status == "completed"


def test_a_continue_with_nothing_held_changes_nothing() -> None:
    r = Rehearsal(CHAIN)
    before = r.state.to_dict()
    assert r.send(Continue(), room=3) == [] and r.state.to_dict() == before


def test_a_paused_workflow_starts_nothing_on_continue_and_its_resume_keeps_the_room() -> None:
    r = items_flow(things=list("abcd"), room=1)
    r.send(Pause())
    assert not held(r)  # a paused run is continued by its resume, not by the engine
    assert r.send(Continue(), room=4) == []
    r.done("each", index=0)
    assert r.state.status == "paused"
    r.send(Resume(), room=2)
    assert r.runs() == ["each[1]", "each[2]"] and held(r)
    r.send(Continue())
    assert r.runs() == ["each[3]"] and not held(r)


def test_a_cancel_never_starts_the_held_items() -> None:
    r = items_flow(things=list("abcd"), room=2)
    commands = r.send(Cancel())
    cancels = [command for command in commands if isinstance(command, CancelTasks)]
    assert cancels == [CancelTasks([("each", 0), ("each", 1)])] and not held(r)
    r.done("each", index=0, status="cancelled")
    r.done("each", index=1, status="cancelled")
    assert r.finish().status == "cancelled"
    assert r.state.tasks["each"]["next"] == 2  # items 2 and 3 never ran


def test_continue_round_trips_like_every_event() -> None:
    assert conductor.event_from_dict(conductor.event_to_dict(Continue())) == Continue()
