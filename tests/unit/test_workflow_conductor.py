"""Rehearsal tests of the pure conductor: feed events, assert the commands and the path taken."""

from __future__ import annotations

import time
from typing import Any

import pytest
import yaml

from attune.domain.templates import TemplateEngine
from attune.workflow import conductor
from attune.workflow.conductor import (
    Cancel,
    CancelTasks,
    Command,
    Finish,
    Pause,
    Paused,
    Rerun,
    Resume,
    RunTask,
    StartTimer,
    TaskFinished,
    TimerFired,
    WorkflowState,
)
from attune.workflow.spec import WorkflowSpec, WorkflowValidationError, parse_workflow

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

    def __init__(self, text: str | WorkflowSpec, parameters: dict[str, Any] | None = None) -> None:
        self.spec = spec_of(text) if isinstance(text, str) else text
        self.state, self.last = conductor.start(self.spec, parameters or {}, engine=ENGINE)

    def send(self, event: conductor.Event) -> list[Command]:
        self.state, self.last = conductor.advance(self.spec, self.state, event, engine=ENGINE)
        return self.last

    def done(
        self, task: str, result: Any = None, status: str = "completed", index: int | None = None
    ) -> list[Command]:
        return self.send(TaskFinished(task, index, status, result if result is not None else ok()))

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


# -- docs/workflows.md examples ---------------------------------------------------------------------

BACKUP = """
ref: ops.backup_database
label: Back up a database
description: Dump a database, upload the dump, report the outcome.
version: "1.2.0"
parameters:
  db_host:    {type: string, required: true}
  bucket:     {type: string, default: nightly-dumps}
  notify_url: {type: string, required: true}
output:
  archive: {type: string}
vars:
  archive_path: null
tasks:
  - name: dump
    action: dbtools.pg_dump
    input:
      host: "{{ parameters.db_host }}"
      compress: true
    next:
      - when: "{{ succeeded() }}"
        publish:
          - archive_path: "{{ result().data.path }}"
        do: [upload]
      - when: "{{ failed() }}"
        do: [report_failure]
  - name: upload
    action: storage.put_object
    input:
      bucket: "{{ parameters.bucket }}"
      file: "{{ vars.archive_path }}"
      key: "db/{{ parameters.db_host }}/{{ system.workflow_start }}.sql.gz"
    next:
      - when: "{{ succeeded() }}"
        do: [report_success]
      - when: "{{ failed() }}"
        do: [report_failure]
  - name: report_success
    action: core.http_request
    input:
      url: "{{ parameters.notify_url }}"
      method: POST
      body: "backup of {{ parameters.db_host }} stored at {{ archive_path }}"
  - name: report_failure
    action: core.http_request
    input:
      url: "{{ parameters.notify_url }}"
      method: POST
      body: "backup of {{ parameters.db_host }} failed"
output_map:
  archive: "{{ vars.archive_path }}"
"""

BACKUP_PARAMS = {"db_host": "db1", "notify_url": "http://hook"}


def test_backup_happy_path_publishes_and_fills_defaults() -> None:
    r = Rehearsal(BACKUP, BACKUP_PARAMS)
    assert r.runs() == ["dump"]
    assert r.run_of("dump").input == {"host": "db1", "compress": True}
    r.done("dump", ok(path="/tmp/d.gz", bytes=10))
    upload = r.run_of("upload")
    assert upload.input["bucket"] == "nightly-dumps"
    assert upload.input["file"] == "/tmp/d.gz"
    assert upload.input["key"] == f"db/db1/{r.state.started_at}.sql.gz"
    r.done("upload")
    assert r.run_of("report_success").input["body"] == "backup of db1 stored at /tmp/d.gz"
    r.done("report_success")
    finish = r.finish()
    assert finish.status == "completed"
    assert finish.result == {"succeeded": True, "output": {"archive": "/tmp/d.gz"}}


def test_backup_handled_failure_runs_report_and_completes() -> None:
    r = Rehearsal(BACKUP, BACKUP_PARAMS)
    r.done("dump", bad(), status="failed")
    assert r.runs() == ["report_failure"]
    r.done("report_failure")
    # Orquesta semantics: the failure was handled by a transition, so the workflow succeeds.
    assert r.finish().status == "completed"
    assert r.state.tasks["dump"]["status"] == "failed"


PATCH_FLEET = """
ref: ops.patch_fleet
label: Patch a fleet of hosts
version: "0.3.0"
parameters:
  inventory_url: {type: string, required: true}
vars:
  hosts: []
tasks:
  - name: fetch_inventory
    action: core.http_request
    input:
      url: "{{ parameters.inventory_url }}"
    next:
      - when: "{{ succeeded() }}"
        publish:
          - hosts: "{{ result().data.json.hosts }}"
        do: [patch_hosts, announce]
  - name: patch_hosts
    action: fleet.apply_patches
    with_items: "{{ hosts }}"
    concurrency: 3
    input:
      hostname: "{{ item.name }}"
      reboot: "{{ item.reboot_ok }}"
      slot: "{{ index }}"
    next:
      - do: [summarize]
  - name: announce
    action: core.echo
    input:
      message: "patching {{ hosts }}"
    next:
      - do: [summarize]
  - name: summarize
    action: core.noop
    join: 2
    input:
      message: "fleet run finished"
"""

HOSTS = [{"name": f"h{i}", "reboot_ok": i % 2 == 0} for i in range(5)]


def test_patch_fleet_window_of_three_and_join() -> None:
    r = Rehearsal(PATCH_FLEET, {"inventory_url": "http://inv"})
    r.done("fetch_inventory", ok(json={"hosts": HOSTS}))
    assert r.runs() == ["patch_hosts[0]", "patch_hosts[1]", "patch_hosts[2]", "announce"]
    assert r.run_of("patch_hosts", 0).input == {"hostname": "h0", "reboot": True, "slot": 0}
    assert r.run_of("announce").input["message"].startswith('patching [{"name":"h0","reboot_ok":true}')
    r.done("patch_hosts", index=1)
    assert r.runs() == ["patch_hosts[3]"]
    r.done("announce")
    assert r.runs() == []  # join: 2 waits for patch_hosts
    r.done("patch_hosts", index=0)
    assert r.runs() == ["patch_hosts[4]"]
    r.done("patch_hosts", index=2)
    r.done("patch_hosts", index=3)
    assert r.runs() == []
    r.done("patch_hosts", index=4)
    assert r.runs() == ["summarize"]
    r.done("summarize")
    assert r.finish().status == "completed"
    aggregate = r.state.tasks["patch_hosts"]["result"]
    assert aggregate["total"] == 5
    assert [entry["index"] for entry in aggregate["results"]] == [0, 1, 2, 3, 4]


def test_patch_fleet_item_failure_still_joins_and_is_handled() -> None:
    r = Rehearsal(PATCH_FLEET, {"inventory_url": "http://inv"})
    r.done("fetch_inventory", ok(json={"hosts": HOSTS[:2]}))
    r.done("announce")
    r.done("patch_hosts", index=0)
    r.done("patch_hosts", bad(), status="failed", index=1)
    assert r.state.tasks["patch_hosts"]["status"] == "failed"
    # Orquesta join: an unconditional transition fires whatever the outcome.
    assert r.runs() == ["summarize"]
    r.done("summarize")
    assert r.finish().status == "completed"


DEPLOY = """
ref: ops.deploy_service
label: Deploy a service behind a health gate
version: "2.0.0"
parameters:
  service:     {type: string, required: true}
  image_tag:   {type: string, required: true}
  environment: {type: string, enum: [staging, production], default: staging}
vars:
  deploy_id: null
tasks:
  - name: start_rollout
    action: k8s.rollout
    input:
      service: "{{ parameters.service }}"
      tag: "{{ parameters.image_tag }}"
    timeout: 600
    retry:
      count: 3
      delay: 10
      backoff: exponential
      max_delay: 60
      on_error: "{{ result().data.retryable }}"
    next:
      - when: "{{ succeeded() }}"
        publish:
          - deploy_id: "{{ result().data.id }}"
        do: [health_check]
      - when: "{{ failed() }}"
        do: [rollback]
      - when: "{{ timed_out() }}"
        do: [rollback]
  - name: health_check
    action: core.http_request
    delay: 30
    input:
      url: "https://{{ parameters.service }}.internal/healthz"
      timeout: 5
    next:
      - when: "{{ succeeded() and result().data.status_code == 200 }}"
        do: [promote]
      - when: "{{ failed() or result().data.status_code != 200 }}"
        do: [rollback]
  - name: promote
    action: k8s.promote
    when: "{{ parameters.environment == 'production' }}"
    input:
      deploy_id: "{{ vars.deploy_id }}"
  - name: rollback
    action: k8s.rollback
    input:
      service: "{{ parameters.service }}"
output_map:
  deploy_id: "{{ vars.deploy_id }}"
  healthy: "{{ task.health_check.data.success }}"
"""


def test_deploy_retries_with_exponential_backoff_then_gates_promote() -> None:
    r = Rehearsal(DEPLOY, {"service": "api", "image_tag": "v2"})
    rollout = r.run_of("start_rollout")
    assert (rollout.timeout, rollout.attempt) == (600, 1)
    waits = []
    for attempt in (1, 2, 3):
        r.done("start_rollout", {"succeeded": False, "data": {"retryable": True}}, status="failed")
        (timer,) = r.last
        assert isinstance(timer, StartTimer) and timer.kind == "retry"
        waits.append(timer.seconds)
        r.send(TimerFired("start_rollout", None, "retry"))
        assert r.run_of("start_rollout").attempt == attempt + 1
    assert waits == [10, 20, 40]
    r.done("start_rollout", ok(id="d-1"))
    assert r.last == [StartTimer("health_check", None, "delay", 30)]
    r.send(TimerFired("health_check", None, "delay"))
    assert r.run_of("health_check").input == {"url": "https://api.internal/healthz", "timeout": 5}
    r.done("health_check", ok(status_code=200, success=True))
    # promote is skipped by its gate (staging); nothing else to run.
    assert r.state.tasks["promote"]["status"] == "skipped"
    finish = r.finish()
    assert finish.result == {"succeeded": True, "output": {"deploy_id": "d-1", "healthy": True}}


def test_deploy_level2_condition_rolls_back_on_http_500() -> None:
    r = Rehearsal(DEPLOY, {"service": "api", "image_tag": "v2", "environment": "production"})
    r.done("start_rollout", ok(id="d-1"))
    r.send(TimerFired("health_check", None, "delay"))
    r.done("health_check", ok(status_code=500, success=False))
    assert r.runs() == ["rollback"]


def test_deploy_non_retryable_error_is_not_retried() -> None:
    r = Rehearsal(DEPLOY, {"service": "api", "image_tag": "v2"})
    r.done("start_rollout", {"succeeded": False, "data": {"retryable": False}}, status="failed")
    assert r.runs() == ["rollback"]


def test_deploy_timeout_fires_timed_out_transition() -> None:
    r = Rehearsal(DEPLOY, {"service": "api", "image_tag": "v2"})
    r.done("start_rollout", {"succeeded": False, "data": {"retryable": False}}, status="timeout")
    assert r.runs() == ["rollback"]
    assert r.state.tasks["start_rollout"]["status"] == "timeout"


def test_deploy_production_promotes() -> None:
    r = Rehearsal(DEPLOY, {"service": "api", "image_tag": "v2", "environment": "production"})
    r.done("start_rollout", ok(id="d-9"))
    r.send(TimerFired("health_check", None, "delay"))
    r.done("health_check", ok(status_code=200, success=True))
    assert r.runs() == ["promote"]
    assert r.run_of("promote").input == {"deploy_id": "d-9"}


ROTATE = """
ref: ops.rotate_credentials
label: Rotate an API credential
version: "1.0.0"
parameters:
  account: {type: string, required: true}
tasks:
  - name: issue_new_key
    action: vault.issue_key
    input:
      account: "{{ parameters.account }}"
    publish:
      - new_key_id: "{{ result().data.key_id }}"
    on_success: revoke_old_keys
    on_failure: alert
  - name: revoke_old_keys
    action: vault.revoke_keys
    input:
      account: "{{ parameters.account }}"
      keep: "{{ new_key_id }}"
    on_complete: audit
  - name: alert
    action: core.echo
    input:
      message: "could not rotate {{ parameters.account }}"
  - name: audit
    action: core.noop
"""


def test_rotate_legacy_form_runs_like_next() -> None:
    r = Rehearsal(ROTATE, {"account": "svc"})
    r.done("issue_new_key", ok(key_id="k2"))
    assert r.run_of("revoke_old_keys").input == {"account": "svc", "keep": "k2"}
    r.done("revoke_old_keys", bad(), status="failed")
    assert r.runs() == ["audit"]  # on_complete handles the failure
    r.done("audit")
    assert r.finish().status == "completed"


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


# -- with_items ------------------------------------------------------------------------------------

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


def items_flow(options: str = "", things: Any = None) -> Rehearsal:
    return Rehearsal(ITEMS.replace("OPTIONS", options or "concurrency: 100"), {"things": things})


def test_with_items_empty_list_completes_at_once() -> None:
    r = items_flow(things=[])
    assert r.runs() == ["ok"]
    assert r.state.vars["out"] == {"results": [], "total": 0}


def test_with_items_scalar_is_one_item() -> None:
    r = items_flow(things="solo")
    assert r.runs() == ["each[0]"]
    assert r.run_of("each", 0).input == {"value": "solo", "at": 0}


def test_with_items_concurrency_window_refills_lowest_index_first() -> None:
    r = items_flow("concurrency: 2", things=list("abcde"))
    assert r.runs() == ["each[0]", "each[1]"]
    r.done("each", index=1)
    assert r.runs() == ["each[2]"]
    r.done("each", index=0)
    assert r.runs() == ["each[3]"]
    for index in (2, 3):
        r.done("each", index=index)
    r.done("each", ok(v="e"), index=4)
    assert r.runs() == ["ok"]
    results = r.state.vars["out"]["results"]
    assert [x["index"] for x in results] == [0, 1, 2, 3, 4]
    assert results[4] == {"index": 4, "status": "completed", "output": ok(v="e")}


def test_with_items_fails_iff_an_item_failed() -> None:
    r = items_flow(things=[1, 2, 3])
    r.done("each", index=0)
    r.done("each", index=1, status="cancelled")
    r.done("each", bad(), index=2, status="failed")
    assert r.runs() == ["ko"]


def test_with_items_cancelled_item_does_not_fail_task() -> None:
    r = items_flow(things=[1, 2])
    r.done("each", index=0)
    r.done("each", index=1, status="cancelled")
    assert r.runs() == ["ok"]


def test_with_items_batch_size_chunks_items() -> None:
    r = items_flow("batch_size: 2", things=[1, 2, 3, 4, 5])
    assert r.runs() == ["each[0]", "each[1]", "each[2]"]
    assert r.run_of("each", 2).input == {"value": [5], "at": 2}
    assert r.run_of("each", 0).input == {"value": [1, 2], "at": 0}


def test_with_items_duplicate_completion_is_ignored() -> None:
    r = items_flow("concurrency: 1", things=[1, 2])
    r.done("each", index=0)
    assert r.send(TaskFinished("each", 0, "completed", ok())) == []
    r.done("each", index=1)
    assert r.runs() == ["ok"]


def test_with_items_ten_thousand_items_is_linear() -> None:
    count = 10_000
    r = items_flow("concurrency: 50", things=list(range(count)))
    began = time.perf_counter()
    for index in range(count):
        r.send(TaskFinished("each", index, "completed", {"succeeded": True}))
    elapsed = time.perf_counter() - began
    assert r.runs() == ["ok"]
    assert r.state.vars["out"]["total"] == count
    assert elapsed < 5, f"{count} item completions took {elapsed:.2f}s"


def test_with_items_item_retry_keeps_window() -> None:
    r = items_flow("concurrency: 1\n    retry: {count: 1, delay: 2}", things=["x", "y"])
    r.done("each", bad(), index=0, status="failed")
    assert r.last == [StartTimer("each", 0, "retry", 2.0)]
    r.send(TimerFired("each", 0, "retry"))
    assert r.run_of("each", 0).attempt == 2
    r.done("each", index=0)
    assert r.runs() == ["each[1]"]


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


# -- cancel, pause, resume, rerun ------------------------------------------------------------------

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


# -- persistence -----------------------------------------------------------------------------------


def test_state_and_commands_round_trip_through_json() -> None:
    import json

    r = Rehearsal(PATCH_FLEET, {"inventory_url": "http://inv"})
    r.done("fetch_inventory", ok(json={"hosts": HOSTS}))
    restored = WorkflowState.from_dict(json.loads(json.dumps(r.state.to_dict())))
    r.state = restored
    r.done("patch_hosts", index=0)
    assert r.runs() == ["patch_hosts[3]"]
    for cmd in [*r.last, CancelTasks([("a", 1), ("b", None)]), Finish("failed", {"x": 1}, "e"), Paused()]:
        assert conductor.command_from_dict(json.loads(json.dumps(conductor.command_to_dict(cmd)))) == cmd
    for event in [
        TaskFinished("a", 2, "timeout", {"e": 1}),
        TimerFired("a", None, "delay"),
        Cancel(),
        Rerun(["a"]),
    ]:
        assert conductor.event_from_dict(json.loads(json.dumps(conductor.event_to_dict(event)))) == event
