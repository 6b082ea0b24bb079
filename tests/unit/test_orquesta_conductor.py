"""Rehearsals of Orquesta workflows on the conductor: the task sequence, task statuses, published
context and output that StackStorm's Orquesta gives (docs/stackstorm.md)."""

from __future__ import annotations

from typing import Any

import yaml

from attune.domain.templates import TemplateEngine
from attune.workflow import conductor
from attune.workflow.conductor import Finish, RunTask, TaskFinished
from attune.workflow.spec import parse_workflow, to_document

ENGINE = TemplateEngine()


def local(stdout: str = "", code: int = 0) -> dict[str, Any]:
    """A ``core.local`` result as st2 shapes it."""
    return {"stdout": stdout, "stderr": "", "return_code": code, "succeeded": code == 0, "failed": code != 0}


class Run:
    """Drives one Orquesta workflow and records every task it starts, in order."""

    def __init__(self, text: str, parameters: dict[str, Any] | None = None) -> None:
        spec = parse_workflow(yaml.safe_load(text), ref="st2.wf")
        # What the engine stores and reloads is the native document: run that.
        self.spec = parse_workflow(to_document(spec), ref="st2.wf")
        self.sequence: list[str] = []
        self.runs: list[RunTask] = []
        self.finish: Finish | None = None
        self.state, commands = conductor.start(self.spec, parameters or {}, engine=ENGINE)
        self._record(commands)

    def _record(self, commands: list[conductor.Command]) -> None:
        for command in commands:
            if isinstance(command, RunTask):
                label = command.task if command.index is None else f"{command.task}[{command.index}]"
                self.sequence.append(label)
                self.runs.append(command)
            elif isinstance(command, Finish):
                self.finish = command

    def done(
        self, task: str, result: Any = None, status: str = "completed", index: int | None = None
    ) -> None:
        event = TaskFinished(task, index, status, local() if result is None else result)
        self.state, commands = conductor.advance(self.spec, self.state, event, engine=ENGINE)
        self._record(commands)

    def statuses(self) -> dict[str, str]:
        return {name: record["status"] for name, record in self.state.tasks.items()}

    @property
    def result(self) -> dict[str, Any]:
        assert self.finish is not None, "the workflow has not finished"
        return self.finish.result


SEQUENTIAL = """
version: 1.0
input: [name]
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
    input:
      message: "All your base are belong to us!"
    next:
      - when: <% succeeded() %>
        publish:
          - greeting: <% ctx("greeting") %>, <% result().stdout %>
        do:
          - task3
  task3:
    action: core.echo
    input:
      message: <% ctx('greeting') %>
    next:
      - when: <% succeeded() %>
        publish: greeting=<% result().stdout %>
"""


def test_sequential_publishes_in_order_and_renders_the_output() -> None:
    run = Run(SEQUENTIAL, {"name": "Stanley"})
    assert run.sequence == ["task1"]
    assert run.state.vars == {"name": "Stanley", "greeting": None}
    run.done("task1", local("Stanley"))
    assert run.sequence == ["task1", "task2"]
    run.done("task2", local("All your base are belong to us!"))
    assert run.state.vars["greeting"] == "Stanley, All your base are belong to us!"
    assert run.sequence[-1] == "task3"
    assert run.state.tasks["task3"]["trigger"] == "task2"
    run.done("task3", local("Stanley, All your base are belong to us!"))
    assert run.finish is not None and run.finish.status == "completed"
    assert run.result["output"] == {"greeting": "Stanley, All your base are belong to us!"}
    assert run.statuses() == {"task1": "completed", "task2": "completed", "task3": "completed"}


def test_the_inline_action_parameters_become_the_task_input() -> None:
    run = Run(SEQUENTIAL, {"name": "Stanley"})
    assert (run.runs[0].action, run.runs[0].input) == ("core.echo", {"message": "Stanley"})


PARALLEL = """
version: 1.0
tasks:
  setup:
    action: core.noop
    next:
      - do: [task_b, task_a]
  task_a:
    action: core.echo
    next:
      - publish: [{a: <% result().stdout %>}]
        do: join_task
  task_b:
    action: core.echo
    next:
      - publish: [{b: "{{ result().stdout }}"}]
        do: join_task
  join_task:
    join: all
    action: core.echo
    input:
      message: <% ctx().a %>+<% ctx().b %>
output:
  - both: <% ctx().a + ctx().b %>
"""


def test_parallel_branches_start_in_name_order_and_the_join_waits_for_both() -> None:
    run = Run(PARALLEL)
    run.done("setup")
    assert run.sequence == ["setup", "task_a", "task_b"]  # Orquesta dispatches by task name
    run.done("task_b", local("B"))
    assert run.sequence[-1] == "task_b"  # the join still waits for task_a
    run.done("task_a", local("A"))
    assert run.sequence[-1] == "join_task"
    run.done("join_task", local("A+B"))
    assert run.result["output"] == {"both": "AB"}
    assert run.finish is not None and run.finish.status == "completed"


def test_a_join_count_starts_the_join_when_that_many_branches_arrived() -> None:
    text = PARALLEL.replace("join: all", "join: 1").replace("<% ctx().a %>+", "")
    run = Run(text)
    run.done("setup")
    run.done("task_b", local("B"))
    assert run.sequence[-1] == "join_task"


BRANCHING = """
version: 1.0
tasks:
  check:
    action: core.local cmd="test -f /etc/ready"
    next:
      - when: <% succeeded() %>
        do: deploy
      - when: <% failed() %>
        publish: [{reason: <% result().stderr %>}]
        do: report
  deploy:
    action: core.noop
  report:
    action: core.echo
    input: {message: "not ready: <% ctx().reason %>"}
output:
  - reason: <% ctx().reason %>
"""


def test_a_failure_handled_by_a_failed_transition_does_not_fail_the_workflow() -> None:
    run = Run(BRANCHING)
    run.done("check", {**local(code=1), "stderr": "missing"}, status="failed")
    assert run.sequence == ["check", "report"]
    run.done("report", local("not ready: missing"))
    assert run.finish is not None and run.finish.status == "completed"
    assert run.statuses() == {"check": "failed", "report": "completed"}
    assert run.result["output"] == {"reason": "missing"}


def test_an_unconditional_transition_handles_a_failure() -> None:
    run = Run(PARALLEL.replace("<% ctx().a %>+", ""))
    run.done("setup")
    run.done("task_a", local(code=2), status="failed")
    run.done("task_b", local("B"))
    assert run.sequence[-1] == "join_task"  # Orquesta: the failure was remediated


def test_an_unhandled_failure_fails_after_running_tasks_and_lists_errors_and_output() -> None:
    guarded = "      - when: <% succeeded() %>\n        publish: [{a:"
    run = Run(PARALLEL.replace("      - publish: [{a:", guarded))
    run.done("setup")
    run.done("task_a", local(code=2), status="failed")
    assert run.finish is None  # task_b still runs
    run.done("task_b", local("B"))
    assert "join_task" not in run.sequence  # nothing new starts after the failure
    assert run.finish is not None and run.finish.status == "failed"
    assert run.result["errors"][0] == {
        "type": "error",
        "message": "Execution failed. See result for details.",
        "task_id": "task_a",
        "result": local(code=2),
    }
    assert run.result["output"] == {}  # ctx().a was never published: not rendered, no crash


def test_a_publish_only_failed_transition_does_not_handle_the_failure() -> None:
    text = """
version: 1.0
tasks:
  t1:
    action: core.local cmd=false
    next:
      - when: <% failed() %>
        publish: [{seen: true}]
"""
    run = Run(text)
    run.done("t1", local(code=1), status="failed")
    assert run.finish is not None and run.finish.status == "failed"
    assert run.state.vars["seen"] is True


WITH_ITEMS = """
version: 1.0
input:
  - hosts: [a, b, c]
  - ports: [1, 2, 3]
tasks:
  ping:
    with:
      items: host, port in <% zip(ctx().hosts, ctx().ports) %>
      concurrency: 2
    action: core.local
    input:
      cmd: ping <% item(host) %>:{{ item("port") }}
    next:
      - when: <% succeeded() %>
        publish: [{outs: <% result().select($.stdout) %>}]
output:
  - outs: <% ctx().outs %>
"""


def test_with_items_respects_concurrency_and_keeps_item_order_in_the_result() -> None:
    run = Run(WITH_ITEMS)
    assert run.sequence == ["ping[0]", "ping[1]"]
    assert run.state.tasks["ping"]["inflight"] == 2
    run.done("ping", local("pong-b"), index=1)
    assert run.sequence[-1] == "ping[2]"
    run.done("ping", local("pong-c"), index=2)
    run.done("ping", local("pong-a"), index=0)
    assert run.result["output"] == {"outs": ["pong-a", "pong-b", "pong-c"]}


def test_with_items_inputs_see_the_named_item() -> None:
    run = Run(WITH_ITEMS)
    assert [c.input for c in run.runs] == [{"cmd": "ping a:1"}, {"cmd": "ping b:2"}]


RETRY = """
version: 1.0
tasks:
  flaky:
    action: core.local cmd=./flaky.sh
    retry:
      when: <% failed() %>
      count: 2
    next:
      - when: <% succeeded() %>
        do: after
  after:
    action: core.noop
  poll:
    action: core.local cmd=status
    retry:
      when: <% succeeded() and result().stdout != "ready" %>
      count: 5
"""


def test_retry_reruns_a_failed_task_up_to_count_and_transitions_only_on_the_last_attempt() -> None:
    run = Run(RETRY)
    assert run.sequence == ["flaky", "poll"]
    run.done("flaky", local(code=1), status="failed")
    assert run.sequence[-1] == "flaky"
    run.done("flaky", local(code=1), status="failed")
    assert run.sequence.count("flaky") == 3
    run.done("flaky", local("ok"))
    assert run.sequence[-1] == "after"


def test_retry_when_polls_a_succeeded_task_until_its_condition_is_false() -> None:
    run = Run(RETRY)
    run.done("poll", local("starting"))
    run.done("poll", local("starting"))
    assert run.sequence.count("poll") == 3
    run.done("poll", local("ready"))
    assert run.state.tasks["poll"]["status"] == "completed"
    assert run.sequence.count("poll") == 3


NESTED_CTX = """
version: 1.0
input:
  - count: 1
vars:
  - total: <% ctx().count * 10 %>
  - label: "n={{ ctx('total') }}"
tasks:
  first:
    action: core.echo
    next:
      - publish:
          - total: <% ctx().total + 1 %>
          - doubled: <% ctx().total * 2 %>
        do: second
  second:
    action: core.echo
    input:
      message: "{{ ctx().label }} <% ctx().doubled %>"
output:
  - total: <% ctx().total %>
  - doubled: <% ctx().doubled %>
  - summary: "{{ ctx('total') }}/<% ctx().doubled %>"
"""


def test_vars_render_in_order_and_publishes_see_the_previous_publish() -> None:
    run = Run(NESTED_CTX)
    assert run.state.vars == {"count": 1, "total": 10, "label": "n=10"}
    run.done("first")
    assert run.state.vars["total"] == 11
    assert run.state.vars["doubled"] == 22  # rendered after total was published
    run.done("second")
    assert run.result["output"] == {"total": 11, "doubled": 22, "summary": "11/22"}


def test_yaql_and_jinja_render_in_one_task_input() -> None:
    run = Run(NESTED_CTX)
    run.done("first")
    assert run.runs[-1].task == "second"
    assert run.runs[-1].input == {"message": "n=10 22"}


COMMANDS = """
version: 1.0
tasks:
  probe:
    action: core.local cmd=probe
    next:
      - when: <% failed() %>
        do: noop
      - when: <% succeeded() and result().stdout = "bad" %>
        do: [cleanup, fail]
  cleanup:
    action: core.noop
"""


def test_noop_handles_a_failure() -> None:
    run = Run(COMMANDS)
    run.done("probe", local(code=1), status="failed")
    assert run.finish is not None and run.finish.status == "completed"


def test_fail_fails_the_workflow_but_its_sibling_cleanup_still_runs() -> None:
    run = Run(COMMANDS)
    run.done("probe", local("bad"))
    assert run.sequence == ["probe", "cleanup"]
    assert run.finish is None
    run.done("cleanup")
    assert run.finish is not None and run.finish.status == "failed"
    assert [e["task_id"] for e in run.result["errors"]] == ["probe"]
    assert "'fail' command" in run.result["errors"][0]["message"]


def test_an_expression_error_in_a_transition_fails_the_workflow() -> None:
    text = """
version: 1.0
tasks:
  t1:
    action: core.noop
    next:
      - when: <% result().missing.deeper %>
        do: t2
  t2:
    action: core.noop
"""
    run = Run(text)
    run.done("t1", local())
    assert run.finish is not None and run.finish.status == "failed"
    assert "next[0].when" in run.result["errors"][0]["message"]


def test_an_action_less_task_only_routes() -> None:
    text = """
version: 1.0
tasks:
  start:
    next:
      - do: work
  work:
    action: core.noop
"""
    run = Run(text)
    assert run.sequence == ["work"]
    assert run.state.tasks["start"]["status"] == "completed"


def test_a_partially_satisfied_join_fails_the_workflow() -> None:
    text = """
version: 1.0
tasks:
  a:
    action: core.noop
    next:
      - when: <% succeeded() %>
        do: j
  b:
    action: core.noop
    next:
      - when: <% failed() %>
        do: j
  j:
    join: all
    action: core.noop
"""
    run = Run(text)
    run.done("a")
    run.done("b")
    assert run.finish is not None and run.finish.status == "failed"
    assert "partially satisfied" in run.result["errors"][0]["message"]


def test_task_status_names_follow_orquesta() -> None:
    text = """
version: 1.0
tasks:
  a:
    action: core.noop
    next:
      - publish: [{seen: <% task_status(a) %>, other: <% task_status(b) %>}]
  b:
    action: core.noop
"""
    run = Run(text)
    run.done("a")
    assert run.state.vars["seen"] == "succeeded"
    assert run.state.vars["other"] == "running"


BRANCH_CONTEXTS = """
version: 1.0
vars:
  - x: init
output:
  - x: <% ctx().x %>
  - seen_in_a: <% ctx().seen_in_a %>
tasks:
  setup:
    action: core.noop
    next:
      - do: [a1, b1]
  a1:
    action: core.echo
    next:
      - publish: x=from_a
        do: a2
  a2:
    action: core.echo
    next:
      - publish: seen_in_a=<% ctx().x %>
        do: a3
  a3:
    action: core.echo message=<% ctx().x %>
    next:
      - do: joined
  b1:
    action: core.echo
    next:
      - publish: x=from_b
        do: joined
  joined:
    join: all
    action: core.echo message=<% ctx().x %>
"""


def test_each_parallel_branch_keeps_its_own_context_and_the_join_merges_them() -> None:
    """#16: one global context let branch b's publish leak into branch a."""
    run = Run(BRANCH_CONTEXTS)
    run.done("setup")
    run.done("a1")  # branch a: x = from_a
    run.done("b1")  # branch b: x = from_b, and waits at the join
    run.done("a2")  # still on branch a: sees its own x
    assert run.state.tasks["a2"]["ctx_out"]["seen_in_a"] == "from_a"
    assert run.runs[-1].task == "a3" and run.runs[-1].input == {"message": "from_a"}
    run.done("a3")
    # The join merges the branches in the order they arrived: branch a came last and wins.
    assert run.runs[-1].task == "joined" and run.runs[-1].input == {"message": "from_a"}
    run.done("joined")
    assert run.finish is not None and run.finish.status == "completed"
    assert run.result["output"] == {"x": "from_a", "seen_in_a": "from_a"}


def test_the_branch_arriving_last_at_the_join_wins() -> None:
    run = Run(BRANCH_CONTEXTS)
    run.done("setup")
    run.done("a1")
    run.done("a2")
    run.done("a3")  # branch a reaches the join first
    run.done("b1")  # branch b arrives last: its x wins
    assert run.runs[-1].task == "joined" and run.runs[-1].input == {"message": "from_b"}
    run.done("joined")
    assert run.result["output"] == {"x": "from_b", "seen_in_a": "from_a"}


def test_a_variable_published_in_one_branch_is_not_visible_in_the_other() -> None:
    text = BRANCH_CONTEXTS.replace("publish: x=from_b", "publish: b_saw=<% ctx().x %>")
    run = Run(text)
    run.done("setup")
    run.done("a1")  # branch a publishes x before b finishes
    run.done("b1")
    assert run.state.tasks["b1"]["ctx_out"]["b_saw"] == "init"
