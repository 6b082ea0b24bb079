"""The conductor's status transition table, checked exhaustively, and the persisted record shape."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import pytest
import yaml

from attune.domain.templates import TemplateEngine
from attune.workflow import conductor
from attune.workflow.records import (
    ACTIVE,
    TASK_TRANSITIONS,
    TERMINAL_WORKFLOW,
    WORKFLOW_TRANSITIONS,
    InvalidTransition,
    TaskRecord,
    TaskStatus,
    WorkflowStatus,
    new_record,
    set_status,
    set_workflow_status,
)
from attune.workflow.spec import parse_workflow

S = TypeVar("S")


def reachable(table: Mapping[Any, Iterable[S]], start: Any) -> set[S]:
    seen: set[S] = set()
    queue: deque[Any] = deque([start])
    while queue:
        for target in table.get(queue.popleft(), ()):
            if target not in seen:
                seen.add(target)
                queue.append(target)
    return seen


@pytest.mark.parametrize("source", [None, *TaskStatus])
@pytest.mark.parametrize("target", list(TaskStatus))
def test_every_task_status_change_is_allowed_or_refused_as_the_table_says(
    source: TaskStatus | None, target: TaskStatus
) -> None:
    listed = target in TASK_TRANSITIONS[source]
    if source is None:
        if listed:
            assert new_record(target, None)["status"] == target
        else:
            with pytest.raises(InvalidTransition):
                new_record(target, None)
        return
    record: TaskRecord = {"status": source, "attempts": 0, "trigger": None}
    if listed or source == target:  # staying where it is is no change
        set_status(record, target)
        assert record["status"] == target
    else:
        with pytest.raises(InvalidTransition):
            set_status(record, target)
        assert record["status"] == source


@pytest.mark.parametrize("source", list(WorkflowStatus))
@pytest.mark.parametrize("target", list(WorkflowStatus))
def test_every_workflow_status_change_is_allowed_or_refused_as_the_table_says(
    source: WorkflowStatus, target: WorkflowStatus
) -> None:
    if target in WORKFLOW_TRANSITIONS[source] or source == target:
        assert set_workflow_status(source, target) == target
    else:
        with pytest.raises(InvalidTransition):
            set_workflow_status(source, target)


def test_the_tables_cover_every_status_and_every_status_is_reachable() -> None:
    assert set(TASK_TRANSITIONS) == {None, *TaskStatus}
    assert set(WORKFLOW_TRANSITIONS) == set(WorkflowStatus)
    assert reachable(TASK_TRANSITIONS, None) == set(TaskStatus)
    assert reachable(WORKFLOW_TRANSITIONS, WorkflowStatus.RUNNING) | {WorkflowStatus.RUNNING} == set(
        WorkflowStatus
    )
    # An active task always has a way out; a finished workflow leaves only to be re-run.
    assert all(TASK_TRANSITIONS[status] - ACTIVE for status in ACTIVE)
    for status in TERMINAL_WORKFLOW:
        assert WORKFLOW_TRANSITIONS[status] <= {WorkflowStatus.RUNNING}
    # Nothing comes back from completed or skipped.
    assert not TASK_TRANSITIONS[TaskStatus.COMPLETED] and not TASK_TRANSITIONS[TaskStatus.SKIPPED]


def test_a_state_persisted_before_the_typed_records_still_loads_and_runs() -> None:
    """A run that started before an upgrade: its stored JSON (plain strings) loads, advances, and
    is written back in the same shape."""
    spec = parse_workflow(
        yaml.safe_load(
            """
            ref: ops.upgrade
            label: Upgrade
            version: 1.0.0
            tasks:
              - {name: a, action: core.noop, next: [{do: [b]}]}
              - {name: b, action: core.noop}
            """
        )
    )
    old = {
        "status": "running",
        "parameters": {},
        "vars": {},
        "tasks": {"a": {"status": "running", "attempts": 1, "trigger": None}},
        "pending_joins": {},
        "queued": [],
        "held": [],
        "errors": [],
        "warnings": [],
        "runs": 1,
        "max_runs": 1000,
        "started_at": "2026-01-01T00:00:00Z",
        "result": None,
    }
    state = conductor.WorkflowState.from_dict(json.loads(json.dumps(old)))
    assert state.status is WorkflowStatus.RUNNING and state.tasks["a"]["status"] is TaskStatus.RUNNING
    assert json.loads(json.dumps(state.to_dict())) == old
    state, commands = conductor.advance(
        spec,
        state,
        conductor.TaskFinished("a", None, "completed", {"succeeded": True}),
        engine=TemplateEngine(),
    )
    assert [(type(c).__name__, getattr(c, "task", None)) for c in commands] == [("RunTask", "b")]
    stored = json.loads(json.dumps(state.to_dict()))
    assert stored["tasks"]["a"]["status"] == "completed" and stored["tasks"]["b"]["status"] == "running"
