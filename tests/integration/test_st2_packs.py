"""Registering StackStorm-format packs, and files skipped with warnings (docs/stackstorm.md, #12)."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from attune.cli import pack_index
from attune.db import models
from attune.platform import Platform
from tests.conftest import TEST_PASSWORD
from tests.integration.test_cli_commands import Bridge, Cli
from tests.st2_pack import write_st2_pack

PACKS = "/api/v1/packs"


async def register(api: httpx.AsyncClient, path: Path, **extra: object) -> httpx.Response:
    return await api.post(f"{PACKS}/register", json={"path": str(path), "skip_tests": True, **extra})


async def refs(platform: Platform, model: type[models.Base]) -> list[str]:
    async with platform.db.session() as session:
        table = model.__table__  # type: ignore[attr-defined]
        return sorted((await session.execute(sa.select(table.c.ref))).scalars())


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    return root


async def test_a_stackstorm_pack_registers_unmodified(
    api: httpx.AsyncClient, platform: Platform, packs_dir: Path, tmp_path: Path
) -> None:
    """Before: "'ref' field not found in pack.yaml"."""
    assert (await register(api, packs_dir / "core")).status_code == 201
    response = await register(api, write_st2_pack(tmp_path))
    assert response.status_code == 201, response.text
    data = response.json()["data"]
    assert data["ref"] == "st2demo"
    assert data["config"] == {"greeting": "Hello"}  # config.schema.yaml defaults
    assert any("remote-shell-cmd" in line for line in data["warnings"])
    actions = await refs(platform, models.Action)
    assert {"st2demo.greet", "st2demo.hello", "st2demo.flow"} <= set(actions)
    assert "st2demo.remote" not in actions
    assert "st2demo.tick" in await refs(platform, models.Trigger)
    async with platform.db.session() as session:
        greet = (
            await session.execute(sa.select(models.Action).where(models.Action.ref == "st2demo.greet"))
        ).scalar_one()
        rule = (
            await session.execute(sa.select(models.Rule).where(models.Rule.ref == "st2demo.on_tick"))
        ).scalar_one()
        flow = (
            await session.execute(
                sa.select(models.WorkflowDefinition).where(models.WorkflowDefinition.ref == "st2demo.flow")
            )
        ).scalar_one()
    assert greet.entrypoint == "python-script:greet.py"
    assert rule.conditions == [{"field": "count", "operator": "equals", "value": 2}]
    assert rule.action_params == {"name": "tick {{ trigger.count }}"}
    assert flow.definition["dialect"] == "orquesta"
    assert flow.param_schema == {"name": {"type": "string", "default": "world"}}


async def test_fail_on_error_refuses_a_pack_with_unsupported_content(
    api: httpx.AsyncClient, platform: Platform, packs_dir: Path, tmp_path: Path
) -> None:
    assert (await register(api, packs_dir / "core")).status_code == 201
    response = await register(api, write_st2_pack(tmp_path), fail_on_error=True)
    assert response.status_code == 422
    assert "remote-shell-cmd" in response.json()["error"]
    assert "st2demo.greet" not in await refs(platform, models.Action)


BROKEN_WORKFLOW = {
    "pack.yaml": """
        ref: wfs
        version: 1.0.0
    """,
    "workflows/good.yaml": """
        label: Good
        version: "1.0.0"
        tasks:
          - name: one
            action: core.noop
    """,
    "workflows/bad.yaml": """
        label: Bad
        version: "1.0.0"
        tasks:
          - name: one
            action: core.noop
            next:
              - do: [nowhere]
    """,
    "workflows/broken_yaml.yaml": "tasks: [unclosed\n",
}


async def test_a_workflow_that_fails_validation_is_skipped_with_a_warning(
    api: httpx.AsyncClient, platform: Platform, tmp_path: Path
) -> None:
    """#12 item 9: one bad workflow file used to fail the whole registration with 422."""
    response = await register(api, write(tmp_path / "wfs", BROKEN_WORKFLOW))
    assert response.status_code == 201, response.text
    warnings = response.json()["data"]["warnings"]
    assert any(line.startswith("workflows/bad.yaml:") and "nowhere" in line for line in warnings)
    assert any(line.startswith("workflows/broken_yaml.yaml:") for line in warnings)
    assert await refs(platform, models.WorkflowDefinition) == ["wfs.good"]


async def test_fail_on_error_refuses_a_pack_with_an_invalid_workflow(
    api: httpx.AsyncClient, platform: Platform, tmp_path: Path
) -> None:
    response = await register(api, write(tmp_path / "wfs", BROKEN_WORKFLOW), fail_on_error=True)
    assert response.status_code == 422
    assert "workflows/bad.yaml" in response.json()["error"]
    assert await refs(platform, models.WorkflowDefinition) == []


RULES_AND_RUNNERS = {
    "pack.yaml": """
        ref: edges
        version: 1.0.0
    """,
    "triggers/ping.yaml": "name: ping\n",
    "actions/inline.yaml": """
        name: inline
        runner_type: shell
        entry_point: "echo inline works"
    """,
    "actions/mystery.yaml": """
        name: mystery
        runner_type: cobol
        entry_point: run.cbl
    """,
    "rules/present.yaml": """
        name: present
        trigger_ref: edges.ping
        action_ref: edges.inline
        conditions:
          - {field: host, operator: exists}
          - {field: muted, operator: nexists}
    """,
}


async def test_pack_rules_accept_exists_and_nexists(
    api: httpx.AsyncClient, platform: Platform, packs_dir: Path, tmp_path: Path
) -> None:
    """#12 item 5: the API accepted them, rule files did not."""
    assert (await register(api, packs_dir / "core")).status_code == 201
    response = await register(api, write(tmp_path / "edges", RULES_AND_RUNNERS))
    assert response.status_code == 201, response.text
    assert "edges.present" in await refs(platform, models.Rule)


async def test_an_unknown_runner_type_is_reported_not_registered(
    api: httpx.AsyncClient, platform: Platform, packs_dir: Path, tmp_path: Path
) -> None:
    """#12 item 5: it registered silently without a runtime and failed only at run time."""
    assert (await register(api, packs_dir / "core")).status_code == 201
    response = await register(api, write(tmp_path / "edges", RULES_AND_RUNNERS))
    warnings = response.json()["data"]["warnings"]
    assert any("runner_type 'cobol' matches no runtime" in line for line in warnings)
    assert "edges.mystery" not in await refs(platform, models.Action)
    again = await register(api, write(tmp_path / "edges", RULES_AND_RUNNERS), force=True, fail_on_error=True)
    assert again.status_code == 422


SEARCH_RULE = {
    "pack.yaml": """
        name: searching
        version: 1.0.0
        stackstorm_version: ">=3.0"
    """,
    "rules/approved.yaml": """
        name: approved
        pack: searching
        trigger:
          type: core.webhook
        criteria:
          trigger.body.fields:
            type: search
            condition: any
            pattern:
              item.field_name:
                type: equals
                pattern: Status
              item.to_value:
                type: equals
                pattern: Approved
        action:
          ref: core.noop
    """,
}


async def test_a_rule_with_search_criteria_registers(
    api: httpx.AsyncClient, platform: Platform, packs_dir: Path, tmp_path: Path
) -> None:
    """#16: the 'search' operator was skipped as unsupported, with the whole rule."""
    assert (await register(api, packs_dir / "core")).status_code == 201
    response = await register(api, write(tmp_path / "searching", SEARCH_RULE), fail_on_error=True)
    assert response.status_code == 201, response.text
    async with platform.db.session() as session:
        rule = (
            await session.execute(sa.select(models.Rule).where(models.Rule.ref == "searching.approved"))
        ).scalar_one()
    assert rule.conditions == [
        {
            "field": "body.fields",
            "operator": "search",
            "value": {
                "condition": "any",
                "conditions": [
                    {"field": "item.field_name", "operator": "equals", "value": "Status"},
                    {"field": "item.to_value", "operator": "equals", "value": "Approved"},
                ],
            },
        }
    ]


SKIPPING = {
    "pack.yaml": """
        name: skippy
        version: 1.0.0
        stackstorm_version: ">=3.0"
    """,
    "actions/hello.yaml": """
        name: hello
        runner_type: local-shell-cmd
        parameters:
          cmd:
            type: string
            default: echo hello
    """,
    "actions/remote.yaml": """
        name: remote
        runner_type: remote-shell-cmd
        parameters:
          cmd:
            type: string
            default: uptime
    """,
    "aliases/hello.yaml": """
        name: hello
        action_ref: skippy.hello
        formats:
          - "say hello"
    """,
}


def assert_skips_reported(warnings: list[str]) -> None:
    assert any("remote-shell-cmd" in line and "remote.yaml" in line for line in warnings), warnings
    assert any("aliases" in line for line in warnings), warnings


async def test_upload_answers_with_the_skipped_st2_content(
    api: httpx.AsyncClient, platform: Platform, packs_dir: Path, tmp_path: Path
) -> None:
    """#16: only /packs/register returned the warnings; an upload answered with the bare pack."""
    assert (await register(api, packs_dir / "core")).status_code == 201
    archive = pack_index.tar_directory(write(tmp_path / "skippy", SKIPPING))

    async def upload(**form: str) -> httpx.Response:
        files = {"file": ("skippy.tar.gz", archive, "application/gzip")}
        return await api.post(f"{PACKS}/upload", files=files, data={"skip_tests": "true", **form})

    refused = await upload(fail_on_error="true")
    assert refused.status_code == 422, refused.text
    assert "remote-shell-cmd" in refused.json()["error"]
    assert "skippy.hello" not in await refs(platform, models.Action)
    response = await upload()
    assert response.status_code == 201, response.text
    assert_skips_reported(response.json()["data"]["warnings"])
    assert "skippy.hello" in await refs(platform, models.Action)


async def test_install_answers_with_the_skipped_st2_content(
    api: httpx.AsyncClient, platform: Platform, packs_dir: Path, tmp_path: Path
) -> None:
    """#16: /packs/install took no fail_on_error."""
    assert (await register(api, packs_dir / "core")).status_code == 201
    source = str(write(tmp_path / "skippy", SKIPPING))
    body = {"source": source, "skip_tests": True}
    refused = await api.post(f"{PACKS}/install", json={**body, "fail_on_error": True})
    assert refused.status_code == 422, refused.text
    assert "remote-shell-cmd" in refused.json()["error"]
    assert "skippy.hello" not in await refs(platform, models.Action)
    response = await api.post(f"{PACKS}/install", json=body)
    assert response.status_code == 200, response.text
    assert_skips_reported(response.json()["data"]["warnings"])


async def test_cli_fail_on_error_refuses_and_the_default_prints_the_skips(
    app: Any,
    api: httpx.AsyncClient,
    platform: Platform,
    packs_dir: Path,
    tmp_path: Path,
    user: models.Identity,
) -> None:
    """#16: the CLI had no --fail-on-error and `pack register` did not print the skipped files."""
    assert (await register(api, packs_dir / "core")).status_code == 201
    cli = Cli(Bridge(app, asyncio.get_running_loop()), tmp_path / "home")
    assert (await cli("auth", "login", "-u", user.login, "--password", TEST_PASSWORD)).exit_code == 0
    pack = write(tmp_path / "skippy", SKIPPING)
    for command in ("register", "upload", "install"):
        refused = await cli("pack", command, str(pack), "--skip-tests", "--fail-on-error")
        assert refused.exit_code != 0, (command, refused.output)
        assert "remote-shell-cmd" in refused.output, (command, refused.output)
    assert "skippy.hello" not in await refs(platform, models.Action)
    done = await cli("pack", "register", str(pack), "--skip-tests")
    assert done.exit_code == 0, done.output
    assert "remote-shell-cmd" in done.output and "aliases" in done.output
    uploaded = await cli("pack", "upload", str(pack), "--skip-tests", "--force")
    assert uploaded.exit_code == 0, uploaded.output
    assert "remote-shell-cmd" in uploaded.output


TIMER_RULES = {
    "pack.yaml": """
        name: timers
        version: 1.0.0
        stackstorm_version: ">=3.0"
    """,
    "rules/every_minute.yaml": """
        name: every_minute
        pack: timers
        trigger:
          type: core.st2.IntervalTimer
          parameters:
            unit: minutes
            delta: 1
        action:
          ref: core.noop
    """,
    "rules/nightly.yaml": """
        name: nightly
        pack: timers
        trigger:
          type: core.st2.CronTimer
          parameters:
            timezone: UTC
            hour: 2
            minute: 30
        action:
          ref: core.noop
    """,
    "rules/once.yaml": """
        name: once
        pack: timers
        trigger:
          type: core.st2.DateTimer
          parameters:
            timezone: UTC
            date: "2099-01-01 00:00:00"
        action:
          ref: core.noop
    """,
    "rules/hook.yaml": """
        name: hook
        pack: timers
        trigger:
          type: core.st2.webhook
          parameters:
            url: sample
        action:
          ref: core.noop
    """,
}


async def test_st2_timer_rules_register_on_attunes_timers(
    api: httpx.AsyncClient, platform: Platform, packs_dir: Path, tmp_path: Path
) -> None:
    """#16: rules on core.st2.IntervalTimer/CronTimer/DateTimer were skipped."""
    assert (await register(api, packs_dir / "core")).status_code == 201
    response = await register(api, write(tmp_path / "timers", TIMER_RULES))
    assert response.status_code == 201, response.text
    async with platform.db.session() as session:
        rows = (await session.execute(sa.select(models.Rule).order_by(models.Rule.ref))).scalars().all()
        found = {rule.ref: (rule.trigger_ref, rule.trigger_params) for rule in rows}
    assert found == {
        "timers.every_minute": ("core.intervaltimer", {"unit": "minutes", "interval": 1}),
        "timers.nightly": ("core.crontimer", {"expression": "0 30 2 * * *", "timezone": "UTC"}),
        "timers.once": ("core.datetimetimer", {"fire_at": "2099-01-01T00:00:00", "timezone": "UTC"}),
    }
    warnings = response.json()["data"]["warnings"]
    assert any(line.startswith("rules/hook.yaml") and "core.st2.webhook" in line for line in warnings)
