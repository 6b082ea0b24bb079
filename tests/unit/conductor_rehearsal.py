"""The conductor rehearsal (docs/workflows.md): drive one workflow through the pure conductor, event by
event, and keep the commands each step gave; and the flows more than one conductor test module uses.
"""

from __future__ import annotations

from typing import Any

import yaml

from attune.domain.templates import TemplateEngine
from attune.workflow import conductor
from attune.workflow.conductor import (
    Command,
    Finish,
    RunTask,
    TaskFinished,
)
from attune.workflow.spec import WorkflowSpec, parse_workflow

ENGINE = TemplateEngine()


def spec_of(text: str) -> WorkflowSpec:
    return parse_workflow(yaml.safe_load(text))


def ok(**data: Any) -> dict[str, Any]:
    """A worker result document of a succeeded child (docs/packs.md)."""
    return {"succeeded": True, "exit_code": 0, "data": data}


def bad(message: str = "boom") -> dict[str, Any]:
    return {"succeeded": False, "exit_code": 1, "error": message}


class Rehearsal:
    """Drives one workflow; every step's commands are kept in ``self.last``."""

    def __init__(
        self, text: str | WorkflowSpec, parameters: dict[str, Any] | None = None, room: int | None = None
    ) -> None:
        self.spec = spec_of(text) if isinstance(text, str) else text
        self.state, self.last = conductor.start(self.spec, parameters or {}, engine=ENGINE, room=room)

    def send(self, event: conductor.Event, room: int | None = None) -> list[Command]:
        self.state, self.last = conductor.advance(self.spec, self.state, event, engine=ENGINE, room=room)
        return self.last

    def done(
        self,
        task: str,
        result: Any = None,
        status: str = "completed",
        index: int | None = None,
        room: int | None = None,
    ) -> list[Command]:
        return self.send(TaskFinished(task, index, status, result if result is not None else ok()), room)

    def runs(self) -> list[str]:
        return [
            cmd.task if cmd.index is None else f"{cmd.task}[{cmd.index}]"
            for cmd in self.last
            if isinstance(cmd, RunTask)
        ]

    def run_of(self, task: str, index: int | None = None) -> RunTask:
        for cmd in self.last:
            if isinstance(cmd, RunTask) and cmd.task == task and cmd.index == index:
                return cmd
        raise AssertionError(f"no RunTask for {task}[{index}] in {self.last}")

    def finish(self) -> Finish:
        finishes = [cmd for cmd in self.last if isinstance(cmd, Finish)]
        assert len(finishes) == 1, self.last
        return finishes[0]


PARALLEL = """
ref: t.parallel
label: t
version: "1"
tasks:
  - name: fan
    type: parallel
    tasks:
      - {name: p1, action: t.p, input: {n: 1}, next: [{when: "{{ succeeded() }}", do: [p3]}]}
      - {name: p2, action: t.p, input: {n: 2}}
      - {name: p3, action: t.p, input: {n: 3}}
    next:
      - when: "{{ succeeded() }}"
        do: [after]
      - when: "{{ failed() }}"
        do: [cleanup]
  - {name: after, action: t.after, input: {r: "{{ result().results }}"}}
  - {name: cleanup, action: t.cleanup}
"""


ITEMS = """
ref: t.items
label: t
version: "1"
parameters:
  things: {type: array}
tasks:
  - name: each
    action: t.each
    with_items: "{{ parameters.things }}"
    OPTIONS
    input: {value: "{{ item }}", at: "{{ index }}"}
    next:
      - when: "{{ succeeded() }}"
        publish: [{out: "{{ result() }}"}]
        do: [ok]
      - when: "{{ failed() }}"
        do: [ko]
  - {name: ok, action: t.ok}
  - {name: ko, action: t.ko}
"""


def items_flow(options: str = "", things: Any = None, room: int | None = None) -> Rehearsal:
    return Rehearsal(ITEMS.replace("OPTIONS", options or "concurrency: 100"), {"things": things}, room)
