"""Workflows end to end against real processes (docs/workflows.md; docs/workflows.md).

The SQLite pass runs the embedded server; the PostgreSQL pass the scaled deployment. A fixture pack
(actions as small shell scripts, the four examples of docs/workflows.md adapted to them, nested
workflows, a large with_items and control scenarios) is registered through the API.
"""

from __future__ import annotations

import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from attune.testing.deployment import Deployment
from tests.acceptance.harness import running_deployment

TERMINAL = {"completed", "failed", "cancelled", "timeout", "abandoned"}

ECHO_PARAMS = """\
ref: wfacc.echo_params
label: Echo parameters
runner_type: shell
entry_point: echo_params.sh
parameter_delivery: file
parameter_format: json
output_format: json
"""

FLAKY = """\
ref: wfacc.flaky
label: Fails once per marker file, then succeeds
runner_type: shell
entry_point: flaky.sh
parameter_delivery: file
parameter_format: json
output_format: json
parameters:
  marker: {type: string, required: true}
"""

FLAKY_SH = """\
#!/bin/sh
marker=$(sed -n 's/.*"marker": *"\\([^"]*\\)".*/\\1/p' "$ATTUNE_PARAMETER_FILE")
if [ ! -e "$marker" ]; then
    : > "$marker"
    printf '{"retryable": true}\\n'
    exit 1
fi
printf '{"id": "dep-42"}\\n'
"""

BACKUP = """\
ref: wfacc.backup_database
label: Back up a database
version: "1.2.0"
parameters:
  db_host:    {type: string, required: true}
  bucket:     {type: string, default: nightly-dumps}
  notify_url: {type: string, required: true}
  fail_dump:  {type: boolean, default: false}
output:
  archive: {type: string}
vars:
  archive_path: null
tasks:
  - name: dump
    action: wfacc.echo_params
    input:
      path: "/backups/{{ parameters.db_host }}.sql.gz"
      bytes: 1234
      compress: true
      fail: "{{ parameters.fail_dump }}"
    next:
      - when: "{{ succeeded() and not result().data.fail }}"
        publish:
          - archive_path: "{{ result().data.path }}"
        do: [upload]
      - when: "{{ failed() or result().data.fail }}"
        do: [report_failure]
  - name: upload
    action: wfacc.echo_params
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
    action: wfacc.echo_params
    input:
      url: "{{ parameters.notify_url }}"
      method: POST
      body: "backup of {{ parameters.db_host }} stored at {{ archive_path }}"
  - name: report_failure
    action: wfacc.echo_params
    input:
      url: "{{ parameters.notify_url }}"
      body: "backup of {{ parameters.db_host }} failed"
output_map:
  archive: "{{ vars.archive_path }}"
"""

PATCH_FLEET = """\
ref: wfacc.patch_fleet
label: Patch a fleet of hosts
version: "0.3.0"
parameters:
  inventory_url: {type: string, required: true}
vars:
  hosts: []
tasks:
  - name: fetch_inventory
    action: wfacc.echo_params
    input:
      url: "{{ parameters.inventory_url }}"
      json:
        hosts:
          - {name: web1, reboot_ok: true}
          - {name: web2, reboot_ok: false}
          - {name: db1, reboot_ok: true}
          - {name: db2, reboot_ok: false}
    next:
      - when: "{{ succeeded() }}"
        publish:
          - hosts: "{{ result().data.json.hosts }}"
        do: [patch_hosts, announce]
  - name: patch_hosts
    action: wfacc.echo_params
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
output_map:
  patched: "{{ task.patch_hosts.results | map(attribute='output') | map(attribute='data')
    | map(attribute='hostname') | list }}"
"""

DEPLOY = """\
ref: wfacc.deploy_service
label: Deploy a service behind a health gate
version: "2.0.0"
parameters:
  service:     {type: string, required: true}
  image_tag:   {type: string, required: true}
  environment: {type: string, enum: [staging, production], default: staging}
  marker:      {type: string, required: true}
vars:
  deploy_id: null
tasks:
  - name: start_rollout
    action: wfacc.flaky
    input:
      marker: "{{ parameters.marker }}"
    timeout: 60
    retry:
      count: 3
      delay: 1
      backoff: exponential
      max_delay: 2
      on_error: "{{ 'retryable' in result().stdout }}"
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
    action: wfacc.echo_params
    delay: 1
    input:
      url: "https://{{ parameters.service }}.internal/healthz"
      status_code: 200
      success: true
    next:
      - when: "{{ succeeded() and result().data.status_code == 200 }}"
        do: [promote]
      - when: "{{ failed() or result().data.status_code != 200 }}"
        do: [rollback]
  - name: promote
    action: wfacc.echo_params
    when: "{{ parameters.environment == 'production' }}"
    input:
      deploy_id: "{{ vars.deploy_id }}"
  - name: rollback
    action: wfacc.echo_params
    input:
      service: "{{ parameters.service }}"
output_map:
  deploy_id: "{{ vars.deploy_id }}"
  healthy: "{{ task.health_check.data.success }}"
"""

ROTATE = """\
ref: wfacc.rotate_credentials
label: Rotate an API credential
version: "1.0.0"
parameters:
  account: {type: string, required: true}
tasks:
  - name: issue_new_key
    action: wfacc.echo_params
    input:
      account: "{{ parameters.account }}"
      key_id: "key-{{ parameters.account }}-2"
    publish:
      - new_key_id: "{{ result().data.key_id }}"
    on_success: revoke_old_keys
    on_failure: alert
  - name: revoke_old_keys
    action: wfacc.echo_params
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

WEEKLY_RULE = """\
ref: wfacc.weekly_rotation
label: Weekly credential rotation
trigger_ref: core.crontimer
trigger_params:
  expression: "0 0 3 * * 1"
action_ref: wfacc.rotate_credentials
action_params:
  account: "{{ pack.config.service_account }}"
enabled: false
"""


def nested(level: int) -> str:
    action = "core.noop" if level == 3 else f"wfacc.level{level + 1}"
    return textwrap.dedent(
        f"""\
        ref: wfacc.level{level}
        label: Level {level}
        version: "1.0.0"
        tasks:
          - name: before
            action: core.noop
            next: [{{do: [inner]}}]
          - name: inner
            action: {action}
            next: [{{do: [after]}}]
          - name: after
            action: core.noop
        """
    )


MANY = """\
ref: wfacc.many
label: Many items
version: "1.0.0"
parameters:
  items: {type: array, required: true}
tasks:
  - name: each
    action: core.noop
    with_items: "{{ parameters.items }}"
    concurrency: 50
    input:
      message: "n{{ item }}"
output_map:
  results: "{{ task.each.results }}"
"""

SLOW = """\
ref: wfacc.slow
label: Slow
version: "1.0.0"
parameters:
  seconds: {type: integer, default: 30}
tasks:
  - name: nap
    action: core.sleep
    input: {seconds: "{{ parameters.seconds }}"}
    next: [{do: [after]}]
  - name: side
    action: core.sleep
    input: {seconds: "{{ parameters.seconds }}"}
  - name: after
    action: core.noop
"""

RERUNNABLE = """\
ref: wfacc.rerunnable
label: Fails once in the middle
version: "1.0.0"
parameters:
  marker: {type: string, required: true}
tasks:
  - name: prepare
    action: core.noop
    next: [{when: "{{ succeeded() }}", do: [shaky]}]
  - name: shaky
    action: wfacc.flaky
    input: {marker: "{{ parameters.marker }}"}
    next: [{when: "{{ succeeded() }}", do: [finish]}]
  - name: finish
    action: core.noop
"""

RERUNNABLE_OUTER = """\
ref: wfacc.rerunnable_outer
label: Nests the workflow that fails once
version: "1.0.0"
parameters:
  marker: {type: string, required: true}
tasks:
  - name: inner
    action: wfacc.rerunnable
    input: {marker: "{{ parameters.marker }}"}
    next: [{when: "{{ succeeded() }}", do: [done]}]
  - name: done
    action: core.noop
"""


def write_pack(root: Path) -> Path:
    pack = root / "wfacc"
    for sub in ("actions", "workflows", "rules"):
        (pack / sub).mkdir(parents=True)
    (pack / "pack.yaml").write_text(
        "ref: wfacc\nlabel: Workflow acceptance\nversion: 1.0.0\nconfig:\n  service_account: svc\n"
    )
    files = {
        "actions/echo_params.yaml": ECHO_PARAMS,
        "actions/echo_params.sh": '#!/bin/sh\ncat "$ATTUNE_PARAMETER_FILE"\n',
        "actions/flaky.yaml": FLAKY,
        "actions/flaky.sh": FLAKY_SH,
        "workflows/backup_database.yaml": BACKUP,
        "workflows/patch_fleet.yaml": PATCH_FLEET,
        "workflows/deploy_service.yaml": DEPLOY,
        "workflows/rotate_credentials.yaml": ROTATE,
        "workflows/level1.yaml": nested(1),
        "workflows/level2.yaml": nested(2),
        "workflows/level3.yaml": nested(3),
        "workflows/many.yaml": MANY,
        "workflows/slow.yaml": SLOW,
        "workflows/rerunnable.yaml": RERUNNABLE,
        "workflows/rerunnable_outer.yaml": RERUNNABLE_OUTER,
        "rules/weekly_rotation.yaml": WEEKLY_RULE,
    }
    for name, text in files.items():
        path = pack / name
        path.write_text(text)
        if name.endswith(".sh"):
            path.chmod(0o755)
    return pack


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    root = tmp_path_factory.mktemp("workflows")
    with running_deployment(
        root,
        # Under the load of 50 concurrent shell processes on a small machine a 1 s heartbeat can
        # slip past the liveness cut-off (1.5 intervals) and abandon a healthy item.
        heartbeat_interval=5,
        extra_env={"ATTUNE__WORKER__MAX_CONCURRENT_TASKS": "50"},
    ) as deployment:
        pack_dir = write_pack(root)
        deployment.post("/api/v1/packs/register", {"path": str(pack_dir), "skip_tests": True})
        yield deployment


def run(d: Deployment, ref: str, parameters: dict[str, Any] | None = None) -> int:
    data = d.post("/api/v1/executions/execute", {"action_ref": ref, "parameters": parameters or {}})
    return int(data["id"])


def finished(d: Deployment, execution_id: int, timeout: float = 30) -> dict[str, Any]:
    return d.wait_execution(execution_id, TERMINAL, timeout=timeout)


def children(d: Deployment, parent: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = d.get("/api/v1/executions", params={"parent": parent, "per_page": 100})
    return sorted(rows, key=lambda r: r["id"])


def child_runs(d: Deployment, execution_id: int) -> dict[str, list[dict[str, Any]]]:
    state = d.get(f"/api/v1/executions/{execution_id}/workflow")
    return {task["name"]: task["executions"] for task in state["tasks"]}


def wait_until(probe: Any, timeout: float = 20, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} not met within {timeout} s")


# -- the documented examples---------------------------------------------------------------------------


def test_registration_created_the_workflows_and_the_rule(deployment: Deployment) -> None:
    workflows = deployment.get("/api/v1/packs/wfacc/workflows", params={"page_size": 100})
    assert len(workflows) == 11
    rule = deployment.get("/api/v1/rules/wfacc.weekly_rotation")
    assert rule["action_ref"] == "wfacc.rotate_credentials"


def test_sequential_backup_publishes_and_builds_its_output(deployment: Deployment) -> None:
    params = {"db_host": "db1", "notify_url": "http://hooks.local/backup"}
    execution = finished(deployment, run(deployment, "wfacc.backup_database", params))
    assert execution["status"] == "completed", execution
    assert execution["result"]["output"] == {"archive": "/backups/db1.sql.gz"}
    runs = child_runs(deployment, execution["id"])
    assert set(runs) >= {"dump", "upload", "report_success"}
    assert not runs.get("report_failure")
    upload = deployment.get(f"/api/v1/executions/{runs['upload'][0]['execution_id']}")
    assert upload["config"]["bucket"] == "nightly-dumps"  # default filled
    assert upload["config"]["file"] == "/backups/db1.sql.gz"


def test_a_handled_failure_runs_the_failure_branch(deployment: Deployment) -> None:
    params = {"db_host": "db2", "notify_url": "http://hooks.local/backup", "fail_dump": True}
    execution = finished(deployment, run(deployment, "wfacc.backup_database", params))
    runs = child_runs(deployment, execution["id"])
    assert runs.get("report_failure") and not runs.get("upload")
    assert execution["status"] in ("completed", "failed")


def test_fan_out_with_items_concurrency_and_join(deployment: Deployment) -> None:
    execution = finished(deployment, run(deployment, "wfacc.patch_fleet", {"inventory_url": "http://inv"}))
    assert execution["status"] == "completed", execution
    assert execution["result"]["output"] == {"patched": ["web1", "web2", "db1", "db2"]}
    runs = child_runs(deployment, execution["id"])
    assert len(runs["summarize"]) == 1  # the join waited for both predecessors
    items = sorted(runs["patch_hosts"], key=lambda r: r["task_index"])
    configs = [deployment.get(f"/api/v1/executions/{r['execution_id']}")["config"] for r in items]
    assert configs[0] == {"hostname": "web1", "reboot": True, "slot": 0}  # types preserved
    assert configs[3] == {"hostname": "db2", "reboot": False, "slot": 3}
    announce = deployment.get(f"/api/v1/executions/{runs['announce'][0]['execution_id']}")
    assert announce["result"]["stdout"].startswith('patching [{"name":"web1","reboot_ok":true}')


def test_retry_delay_gates_and_output(deployment: Deployment, tmp_path: Path) -> None:
    params = {"service": "api", "image_tag": "v2", "marker": str(tmp_path / "rollout")}
    execution = finished(deployment, run(deployment, "wfacc.deploy_service", params), timeout=40)
    assert execution["status"] == "completed", execution
    assert execution["result"] == {"succeeded": True, "output": {"deploy_id": "dep-42", "healthy": True}}
    state = deployment.get(f"/api/v1/executions/{execution['id']}/workflow")
    tasks = {t["name"]: t for t in state["tasks"]}
    assert [r["retry_count"] for r in tasks["start_rollout"]["executions"]] == [0, 1]
    assert tasks["promote"]["status"] == "skipped" and not tasks["promote"]["executions"]
    assert "rollback" not in tasks or not tasks["rollback"]["executions"]


def test_legacy_form_is_normalised_and_runs(deployment: Deployment) -> None:
    stored = deployment.get("/api/v1/workflows/wfacc.rotate_credentials")["definition"]
    first = stored["tasks"][0]
    assert "on_success" not in first and "publish" not in first
    assert first["next"][0]["do"] == ["revoke_old_keys"]
    execution = finished(deployment, run(deployment, "wfacc.rotate_credentials", {"account": "svc"}))
    assert execution["status"] == "completed", execution
    runs = child_runs(deployment, execution["id"])
    revoke = deployment.get(f"/api/v1/executions/{runs['revoke_old_keys'][0]['execution_id']}")
    assert revoke["config"]["keep"] == "key-svc-2"
    assert runs.get("audit") and not runs.get("alert")


# -- nesting and scale -----------------------------------------------------------------------------


def test_three_levels_of_nesting_complete_and_each_parent_resumes(deployment: Deployment) -> None:
    execution = finished(deployment, run(deployment, "wfacc.level1"))
    assert execution["status"] == "completed", execution
    level2 = child_runs(deployment, execution["id"])
    assert level2["after"], "level 1 resumed after level 2"
    inner2 = level2["inner"][0]["execution_id"]
    level3 = child_runs(deployment, inner2)
    assert level3["after"], "level 2 resumed after level 3"
    inner3 = level3["inner"][0]["execution_id"]
    assert deployment.get(f"/api/v1/executions/{inner3}")["status"] == "completed"
    assert child_runs(deployment, inner3)["after"]


def test_a_thousand_items_with_concurrency_fifty(deployment: Deployment) -> None:
    started = time.monotonic()
    execution_id = run(deployment, "wfacc.many", {"items": list(range(1000))})
    execution = finished(deployment, execution_id, timeout=240)
    elapsed = time.monotonic() - started
    results = execution["result"]["output"]["results"]
    failures = [r for r in results if r["status"] != "completed"]
    assert execution["status"] == "completed", (failures[:3], len(failures))
    assert len(results) == 1000
    assert [r["index"] for r in results] == list(range(1000))
    assert all(r["output"]["stdout"].startswith(f"[NOOP] n{i}\n") for i, r in enumerate(results))
    print(f"1000 items, concurrency 50: {elapsed:.1f} s")


# -- control ---------------------------------------------------------------------------------------


def _running_children(d: Deployment, execution_id: int, count: int) -> list[dict[str, Any]]:
    def probe() -> list[dict[str, Any]] | None:
        rows = [c for c in children(d, execution_id) if c["status"] == "running"]
        return rows if len(rows) >= count else None

    result: list[dict[str, Any]] = wait_until(probe, what=f"{count} running children")
    return result


def test_cancel_cancels_the_running_children(deployment: Deployment) -> None:
    execution_id = run(deployment, "wfacc.slow", {"seconds": 30})
    running = _running_children(deployment, execution_id, 2)
    deployment.post(f"/api/v1/executions/{execution_id}/cancel")
    execution = finished(deployment, execution_id, timeout=20)
    assert execution["status"] == "cancelled"
    for child in running:
        assert deployment.get(f"/api/v1/executions/{child['id']}")["status"] == "cancelled"
    assert not child_runs(deployment, execution_id).get("after")


def test_pause_and_resume(deployment: Deployment) -> None:
    execution_id = run(deployment, "wfacc.slow", {"seconds": 1})
    _running_children(deployment, execution_id, 1)
    deployment.post(f"/api/v1/executions/{execution_id}/pause")
    state = wait_until(
        lambda: (s := deployment.get(f"/api/v1/executions/{execution_id}/workflow"))["paused"] and s,
        what="paused",
    )
    assert state["status"] == "running"
    time.sleep(0.5)
    assert not child_runs(deployment, execution_id).get("after"), "nothing starts while paused"
    # The workflow's own execution says so (issue #12 item 7); the run's state row stays running.
    assert deployment.get(f"/api/v1/executions/{execution_id}")["status"] == "paused"
    deployment.post(f"/api/v1/executions/{execution_id}/resume")
    execution = finished(deployment, execution_id)
    assert execution["status"] == "completed", execution
    assert child_runs(deployment, execution_id)["after"]


def test_rerun_a_failed_workflow_from_its_failed_task(deployment: Deployment, tmp_path: Path) -> None:
    execution_id = run(deployment, "wfacc.rerunnable", {"marker": str(tmp_path / "shaky")})
    execution = finished(deployment, execution_id)
    assert execution["status"] == "failed"
    assert "shaky" in execution["result"]["error"]
    response = deployment.request("POST", f"/api/v1/executions/{execution_id}/rerun")
    assert response.status_code == 200, response.text
    assert response.json()["data"]["id"] == execution_id
    execution = finished(deployment, execution_id)
    assert execution["status"] == "completed", execution
    runs = child_runs(deployment, execution_id)
    assert len(runs["prepare"]) == 1, "what succeeded is kept"
    assert len(runs["shaky"]) == 2 and len(runs["finish"]) == 1


def test_rerunning_a_failed_nested_workflow_resumes_its_parent(
    deployment: Deployment, tmp_path: Path
) -> None:
    outer_id = run(deployment, "wfacc.rerunnable_outer", {"marker": str(tmp_path / "shaky")})
    assert finished(deployment, outer_id)["status"] == "failed"
    [inner] = child_runs(deployment, outer_id)["inner"]
    assert inner["status"] == "failed"
    response = deployment.request("POST", f"/api/v1/executions/{inner['execution_id']}/rerun")
    assert response.status_code == 200, response.text
    outer = finished(deployment, outer_id)
    assert outer["status"] == "completed", outer
    runs = child_runs(deployment, outer_id)
    assert [r["execution_id"] for r in runs["inner"]] == [inner["execution_id"]], "resumed in place"
    assert len(runs["done"]) == 1
    inner_runs = child_runs(deployment, inner["execution_id"])
    assert len(inner_runs["prepare"]) == 1 and len(inner_runs["shaky"]) == 2
