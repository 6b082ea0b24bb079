"""Rehearsal tests of the pure conductor (docs/workflows.md): feed events, assert the commands and the path
taken — the documented examples and persistence. test_workflow_conductor_flow, _items and _control hold
the rest; the rehearsal itself is tests/unit/conductor_rehearsal.py.
"""

from __future__ import annotations

from attune.workflow import conductor
from attune.workflow.conductor import (
    Cancel,
    CancelTasks,
    Finish,
    Paused,
    Rerun,
    StartTimer,
    TaskFinished,
    TimerFired,
    WorkflowState,
)
from tests.unit.conductor_rehearsal import Rehearsal, bad, ok

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
