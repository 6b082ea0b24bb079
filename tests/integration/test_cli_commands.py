"""The ``attune`` client commands against the API app in-process (breadth; the real executable
and a real server are exercised in tests/acceptance/test_cli.py)."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import yaml
from typer.testing import CliRunner

from attune.cli.main import app as cli_app
from attune.cli.state import State
from attune.db import models
from attune.platform import Platform
from attune.workflow.engine import WorkflowEngine
from tests.conftest import TEST_PASSWORD


class Bridge(httpx.BaseTransport):
    """Lets the synchronous CLI client talk to the async app running on the test's event loop."""

    def __init__(self, app: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.transport = httpx.ASGITransport(app=app)
        self.loop = loop

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        content = request.read()

        async def forward() -> tuple[int, httpx.Headers, bytes]:
            inner = httpx.Request(request.method, request.url, headers=request.headers, content=content)
            response = await self.transport.handle_async_request(inner)
            return response.status_code, response.headers, await response.aread()

        status, headers, body = asyncio.run_coroutine_threadsafe(forward(), self.loop).result(timeout=30)
        return httpx.Response(status, headers=headers, content=body)


class Cli:
    platform: Platform

    def __init__(self, bridge: Bridge, home: Path) -> None:
        self.bridge = bridge
        self.home = home
        self.runner = CliRunner()
        self.env = {
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "ATTUNE_API_URL": "http://attune.test",
            "ATTUNE_PROFILE": "",
            "ATTUNE_API_TOKEN": "",
            "NO_COLOR": "1",
        }

    @property
    def config_file(self) -> Path:
        return self.home / ".config" / "attune" / "config.yaml"

    async def __call__(self, *args: str, input: str | None = None) -> Any:
        def invoke() -> Any:
            return self.runner.invoke(
                cli_app, list(args), obj=State(transport=self.bridge), env=self.env, input=input
            )

        return await asyncio.to_thread(invoke)

    async def json(self, *args: str) -> Any:
        result = await self("--json", *args)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)


@pytest.fixture
async def cli(app: Any, tmp_path: Path, platform: Platform) -> Cli:
    cli = Cli(Bridge(app, asyncio.get_running_loop()), tmp_path / "home")
    cli.platform = platform
    return cli


@pytest.fixture
async def logged_in(cli: Cli, user: models.Identity) -> Cli:
    result = await cli("auth", "login", "-u", user.login, "--password", TEST_PASSWORD)
    assert result.exit_code == 0, result.output
    return cli


async def test_login_stores_tokens_in_a_private_file_and_whoami_uses_them(
    cli: Cli, user: models.Identity
) -> None:
    result = await cli("auth", "whoami")
    assert result.exit_code == 1
    assert "Not logged in" in result.stderr

    result = await cli("auth", "login", "-u", user.login, "--password", TEST_PASSWORD)
    assert result.exit_code == 0, result.output
    assert "Successfully logged in" in result.stdout
    mode = stat.S_IMODE(os.stat(cli.config_file).st_mode)
    assert mode == 0o600
    saved = yaml.safe_load(cli.config_file.read_text())
    assert saved["profiles"]["default"]["auth_token"]

    data = await cli.json("auth", "whoami")
    assert data["login"] == "alice"

    result = await cli("auth", "logout")
    assert result.exit_code == 0
    assert "auth_token" not in yaml.safe_load(cli.config_file.read_text())["profiles"]["default"]


async def test_bad_login_exits_1_with_the_server_message(cli: Cli, user: models.Identity) -> None:
    result = await cli("auth", "login", "-u", user.login, "--password", "wrong")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: API error (401")
    assert "Invalid login or password" in result.stderr


async def test_expired_token_is_refreshed_silently(
    logged_in: Cli, platform: Platform, user: models.Identity
) -> None:
    config = yaml.safe_load(logged_in.config_file.read_text())
    old_refresh = config["profiles"]["default"]["refresh_token"]
    config["profiles"]["default"]["auth_token"] = "not-a-valid-token"
    logged_in.config_file.write_text(yaml.safe_dump(config))

    rows = await logged_in.json("pack", "list")
    assert rows == []
    saved = yaml.safe_load(logged_in.config_file.read_text())["profiles"]["default"]
    assert saved["auth_token"] != "not-a-valid-token"
    assert platform.tokens.decode(saved["auth_token"]).login == user.login
    assert saved["refresh_token"] and saved["refresh_token"] != "" and old_refresh


async def test_unauthenticated_list_exits_1(cli: Cli, user: models.Identity) -> None:
    result = await cli("pack", "list")
    assert result.exit_code == 1
    assert "Missing authentication token" in result.stderr


async def test_global_options_anywhere_and_conflicting_formats(logged_in: Cli) -> None:
    before = await logged_in("--json", "pack", "list")
    after = await logged_in("pack", "list", "--json")
    assert before.exit_code == after.exit_code == 0
    assert json.loads(before.stdout) == json.loads(after.stdout) == []
    yaml_out = await logged_in("pack", "list", "-y")
    assert yaml_out.exit_code == 0 and yaml.safe_load(yaml_out.stdout) == []
    clash = await logged_in("pack", "list", "--json", "--yaml")
    assert clash.exit_code == 2
    assert "cannot be combined" in clash.output


async def test_profile_override_is_not_saved(logged_in: Cli) -> None:
    result = await logged_in("config", "add-profile", "other", "--api-url", "http://other.example:8080")
    assert result.exit_code == 0, result.output
    result = await logged_in("--profile", "other", "config", "get", "api_url")
    assert result.stdout.strip() == "http://other.example:8080"
    assert yaml.safe_load(logged_in.config_file.read_text())["current_profile"] == "default"
    missing = await logged_in("--profile", "nope", "pack", "list")
    assert missing.exit_code == 1
    assert "Profile 'nope' does not exist" in missing.stderr


async def test_pack_register_uploads_a_local_directory(logged_in: Cli, tmp_path: Path) -> None:
    pack = tmp_path / "src" / "demo"
    (pack / "actions").mkdir(parents=True)
    (pack / "pack.yaml").write_text("ref: demo\nlabel: Demo\nversion: 1.2.3\n")
    (pack / "actions" / "hello.yaml").write_text(
        "ref: demo.hello\nlabel: Hello\nrunner_type: shell\nentry_point: hello.sh\n"
    )
    (pack / "actions" / "hello.sh").write_text("echo hello\n")

    result = await logged_in("pack", "register", str(pack))
    assert result.exit_code == 0, result.output
    assert "Pack 'demo' registered successfully" in result.stdout
    shown = await logged_in.json("pack", "show", "demo")
    assert shown["version"] == "1.2.3"
    assert shown["counts"]["actions"] == 1
    again = await logged_in("pack", "register", str(pack))
    assert again.exit_code == 1
    assert "409" in again.stderr
    forced = await logged_in("pack", "register", str(pack), "--force")
    assert forced.exit_code == 0, forced.output
    actions = await logged_in.json("action", "list", "--pack", "demo")
    assert [a["ref"] for a in actions] == ["demo.hello"]
    gone = await logged_in("pack", "uninstall", "demo", "--yes")
    assert gone.exit_code == 0
    assert await logged_in.json("pack", "list") == []


async def _pack_with_action(cli: Cli) -> None:
    """A pack ``demo`` with an action ``demo.greet`` (name required) and a trigger ``demo.hook``."""
    token = yaml.safe_load(cli.config_file.read_text())["profiles"]["default"]["auth_token"]
    client = httpx.Client(
        transport=cli.bridge, base_url="http://attune.test", headers={"Authorization": f"Bearer {token}"}
    )

    def call(path: str, body: dict[str, Any]) -> None:
        response = client.post(f"/api/v1{path}", json=body)
        assert response.status_code == 201, response.text

    await asyncio.to_thread(call, "/packs", {"ref": "demo", "label": "Demo", "version": "1.0.0"})
    await asyncio.to_thread(
        call,
        "/actions",
        {
            "ref": "demo.greet",
            "pack_ref": "demo",
            "label": "Greet",
            "entrypoint": "echo hi",
            "param_schema": {"name": {"type": "string", "required": True}, "n": {"type": "integer"}},
        },
    )
    await asyncio.to_thread(call, "/triggers", {"ref": "demo.hook", "pack_ref": "demo", "label": "Hook"})


async def test_run_async_sends_typed_parameters(logged_in: Cli) -> None:
    await _pack_with_action(logged_in)
    data = await logged_in.json("run", "demo.greet", "name=Ada Lovelace", "--param", "n=3", "--async")
    assert data["status"] == "requested"
    assert data["config"] == {"name": "Ada Lovelace", "n": 3}
    data = await logged_in.json(
        "action", "execute", "demo.greet", "--params-json", '{"name": "x"}', "--async"
    )
    assert data["config"] == {"name": "x"}

    bad = await logged_in("run", "demo.greet", "oops", "--async")
    assert bad.exit_code == 1
    assert "Invalid parameter format: 'oops'" in bad.stderr
    both = await logged_in("run", "demo.greet", "a=1", "--params-json", "{}")
    assert both.exit_code == 2
    invalid = await logged_in("run", "demo.greet", "n=3", "--async")
    assert invalid.exit_code == 1
    assert "name" in invalid.stderr  # the server names the missing field


async def test_execution_list_filters_and_show(logged_in: Cli) -> None:
    await _pack_with_action(logged_in)
    first = await logged_in.json("run", "demo.greet", "name=a", "--async")
    second = await logged_in.json("run", "demo.greet", "name=b", "--async")
    rows = await logged_in.json("execution", "list", "--status", "requested", "--action", "demo.greet")
    assert [r["id"] for r in rows] == [second["id"], first["id"]]
    assert await logged_in.json("execution", "list", "--status", "failed") == []
    assert [r["id"] for r in await logged_in.json("execution", "list", "--limit", "1")] == [second["id"]]
    table = await logged_in("execution", "list")
    assert "demo.greet" in table.stdout and "requested" in table.stdout
    shown = await logged_in("execution", "show", str(first["id"]))
    assert shown.exit_code == 0 and '"name": "a"' in shown.stdout
    no_result = await logged_in("execution", "result", str(first["id"]))
    assert no_result.exit_code == 1
    assert "has no result yet" in no_result.stderr
    missing = await logged_in("execution", "show", "999999")
    assert missing.exit_code == 1 and "not found" in missing.stderr
    not_int = await logged_in("execution", "show", "abc")
    assert not_int.exit_code == 2


async def test_rule_create_from_file_enable_disable_and_delete(logged_in: Cli, tmp_path: Path) -> None:
    await _pack_with_action(logged_in)
    rule_file = tmp_path / "rule.yaml"
    rule_file.write_text(
        yaml.safe_dump(
            {
                "ref": "demo.on_hook",
                "description": "Greet on hook",
                "trigger_ref": "demo.hook",
                "action_ref": "demo.greet",
                "action_params": {"name": "{{ event.payload.who }}"},
                "enabled": True,
            }
        )
    )
    result = await logged_in("rule", "create", "--file", str(rule_file))
    assert result.exit_code == 0, result.output
    assert "Rule 'demo.on_hook' created successfully" in result.stdout
    result = await logged_in("rule", "disable", "demo.on_hook")
    assert result.exit_code == 0 and "disabled" in result.stdout
    assert (await logged_in.json("rule", "show", "demo.on_hook"))["enabled"] is False
    assert await logged_in.json("rule", "list", "--enabled", "true") == []
    assert [r["ref"] for r in await logged_in.json("rule", "list", "--pack", "demo")] == ["demo.on_hook"]
    flags = await logged_in(
        "rule", "create", "-n", "second", "--pack", "demo", "-t", "demo.hook", "-a", "demo.greet",
        "--action-params", '{"name": "x"}',
    )  # fmt: skip
    assert flags.exit_code == 0, flags.output
    assert (await logged_in.json("rule", "show", "demo.second"))["enabled"] is False
    deleted = await logged_in("rule", "delete", "demo.second", "-y")
    assert deleted.exit_code == 0, deleted.output


async def test_key_set_never_echoes_the_secret(logged_in: Cli) -> None:
    secret = "hunter2-very-secret"
    result = await logged_in("key", "set", "demo_token", secret, "--encrypt")
    assert result.exit_code == 0, result.output
    assert secret not in result.output
    as_json = await logged_in("--json", "key", "set", "demo_token", "rotated-secret-value")
    assert as_json.exit_code == 0 and "rotated-secret-value" not in as_json.output
    assert json.loads(as_json.stdout)["value"] == "********"
    shown = await logged_in("key", "show", "demo_token")
    assert "rotated-secret-value" not in shown.output
    revealed = await logged_in.json("key", "show", "demo_token", "--decrypt")
    assert revealed["value"] == "rotated-secret-value"
    piped = await logged_in("key", "set", "from_stdin", input="piped-secret\n")
    assert piped.exit_code == 0 and "piped-secret" not in piped.output
    assert (await logged_in.json("key", "show", "from_stdin", "--decrypt"))["value"] == "piped-secret"
    listed = await logged_in("key", "list")
    assert "demo_token" in listed.stdout and "piped-secret" not in listed.stdout


async def test_trigger_and_sensor_commands(logged_in: Cli) -> None:
    await _pack_with_action(logged_in)
    assert [t["ref"] for t in await logged_in.json("trigger", "list", "--pack", "demo")] == ["demo.hook"]
    hook = await logged_in("trigger", "webhook", "demo.hook", "enable")
    assert hook.exit_code == 0 and "/api/v1/webhooks/wh_" in hook.stdout
    assert (await logged_in.json("trigger", "show", "demo.hook"))["webhook_enabled"] is True
    assert await logged_in.json("sensor", "list") == []
    missing = await logged_in("sensor", "show", "demo.none")
    assert missing.exit_code == 1 and "not found" in missing.stderr


async def test_completion_lists_refs_from_the_server(logged_in: Cli) -> None:
    await _pack_with_action(logged_in)
    env = {
        **logged_in.env,
        "_ATTUNE_COMPLETE": "complete_bash",
        "COMP_WORDS": "attune run demo.",
        "COMP_CWORD": "2",
    }

    def invoke() -> Any:
        return logged_in.runner.invoke(
            cli_app, [], env=env, obj=State(transport=logged_in.bridge), prog_name="attune"
        )

    result = await asyncio.to_thread(invoke)
    assert "demo.greet" in result.stdout


async def test_workflow_and_inquiry_commands(logged_in: Cli) -> None:
    await _pack_with_action(logged_in)
    token = yaml.safe_load(logged_in.config_file.read_text())["profiles"]["default"]["auth_token"]
    client = httpx.Client(
        transport=logged_in.bridge,
        base_url="http://attune.test",
        headers={"Authorization": f"Bearer {token}"},
    )

    def post(path: str, body: dict[str, Any]) -> Any:
        response = client.post(f"/api/v1{path}", json=body)
        assert response.status_code == 201, response.text
        return response.json()["data"]

    definition = {
        "ref": "demo.flow",
        "label": "Flow",
        "version": "1.0.0",
        "tasks": [{"name": "a", "action": "demo.greet", "input": {"name": "x"}}],
    }
    await asyncio.to_thread(
        post,
        "/workflows",
        {
            "ref": "demo.flow",
            "pack_ref": "demo",
            "label": "Flow",
            "version": "1.0.0",
            "definition": definition,
        },
    )
    assert [w["ref"] for w in await logged_in.json("workflow", "list", "--pack", "demo")] == ["demo.flow"]
    shown = await logged_in("workflow", "show", "demo.flow")
    assert shown.exit_code == 0 and "Definition" in shown.stdout

    execution = await logged_in.json("run", "demo.greet", "name=x", "--async")
    inquiry = await asyncio.to_thread(
        post, "/inquiries", {"execution": execution["id"], "prompt": "Deploy to prod?"}
    )
    listed = await logged_in.json("inquiry", "list", "--status", "pending")
    assert [i["id"] for i in listed] == [inquiry["id"]]
    answered = await logged_in("inquiry", "respond", str(inquiry["id"]), "approved=true")
    assert answered.exit_code == 0, answered.output
    data = await logged_in.json("inquiry", "show", str(inquiry["id"]))
    assert data["status"] == "responded" and data["response"] == {"approved": True}

    flow = await logged_in.json("run", "demo.flow", "--async")
    await WorkflowEngine(logged_in.platform).start(flow["id"])
    paused = await logged_in("execution", "pause", str(flow["id"]))
    assert paused.exit_code == 0, paused.output
    assert (await logged_in.json("execution", "show", str(flow["id"])))["status"] == "paused"
    again = await logged_in("execution", "pause", str(flow["id"]))
    assert again.exit_code == 1 and "not running" in again.stderr
    resumed = await logged_in("execution", "resume", str(flow["id"]))
    assert resumed.exit_code == 0, resumed.output
    assert (await logged_in.json("execution", "show", str(flow["id"])))["status"] == "running"


async def test_execution_rerun_passes_new_parameters(logged_in: Cli) -> None:
    await _pack_with_action(logged_in)
    first = await logged_in.json("run", "demo.greet", "name=a", "n=1", "--async")
    again = await logged_in.json("execution", "rerun", str(first["id"]), "n=2", "--async")
    assert again["config"] == {"name": "a", "n": 2}
    assert again["original_execution"] == first["id"]
    same = await logged_in.json("execution", "rerun", str(first["id"]), "--async")
    assert same["config"] == {"name": "a", "n": 1}


async def test_execution_show_names_the_attempt_and_its_first_execution(
    logged_in: Cli, platform: Platform
) -> None:
    await _pack_with_action(logged_in)
    first = await logged_in.json("run", "demo.greet", "name=a", "--async")
    async with platform.db.transaction() as session:
        retry = models.Execution(
            action_ref="demo.greet",
            config={"name": "a"},
            status="failed",
            original_execution=first["id"],
            retry_count=1,
            max_retries=2,
            retry_reason="action_failed",
        )
        session.add(retry)
    shown = await logged_in("execution", "show", str(retry.id))
    assert shown.exit_code == 0, shown.output
    assert "Attempt" in shown.stdout and "2 of 3" in shown.stdout
    assert "First Execution" in shown.stdout and str(first["id"]) in shown.stdout
    assert "action_failed" in shown.stdout
    listed = await logged_in.json("execution", "list")
    assert {(r["id"], r["original_execution"], r["retry_count"]) for r in listed} >= {
        (retry.id, first["id"], 1)
    }


async def test_rule_create_takes_enabled_values_and_trigger_parameters(logged_in: Cli) -> None:
    await _pack_with_action(logged_in)
    base = ["rule", "create", "--pack", "demo", "-t", "demo.hook", "-a", "demo.greet"]
    params = ["--action-params", '{"name": "x"}']
    for name, flags, expected in [
        ("a", ["--enabled", "true"], True),
        ("b", ["--enabled", "false"], False),
        ("c", ["--enabled=true"], True),
        ("d", ["--enabled"], True),
        ("e", ["--disabled"], False),
    ]:
        result = await logged_in(*base, "-n", name, *params, *flags)
        assert result.exit_code == 0, (flags, result.output)
        assert (await logged_in.json("rule", "show", f"demo.{name}"))["enabled"] is expected, flags
    timer = await logged_in(
        *base, "-n", "timed", *params,
        "--trigger-params", '{"unit": "seconds"}', "--trigger-param", "delta=30",
    )  # fmt: skip
    assert timer.exit_code == 0, timer.output
    shown = await logged_in.json("rule", "show", "demo.timed")
    assert shown["trigger_params"] == {"unit": "seconds", "delta": 30}


async def test_webhook_regenerate_prints_the_new_key_and_url(logged_in: Cli) -> None:
    await _pack_with_action(logged_in)
    first = await logged_in.json("trigger", "webhook", "demo.hook", "enable")
    result = await logged_in("trigger", "webhook", "regenerate", "demo.hook")
    assert result.exit_code == 0, result.output
    new_key = (await logged_in.json("trigger", "show", "demo.hook"))["webhook_key"]
    assert new_key != first["webhook_key"]
    assert "New webhook key" in result.stdout and "enabled" not in result.stdout
    assert f"Key: {new_key}" in result.stdout
    assert f"/api/v1/webhooks/{new_key}" in result.stdout


async def test_runtime_and_policy_commands(logged_in: Cli, platform: Platform) -> None:
    await _pack_with_action(logged_in)
    async with platform.db.transaction() as session:
        pack_id = await session.scalar(sa.select(models.Pack.id).where(models.Pack.ref == "demo"))
        session.add(
            models.Runtime(ref="demo.sh", name="Shell", pack=pack_id, pack_ref="demo", distributions={})
        )
        session.add(
            models.Policy(
                ref="demo.serial",
                name="Serial",
                pack=pack_id,
                pack_ref="demo",
                method="enqueue",
                threshold=1,
                kind="concurrency",
                apply_to_manual=False,
            )
        )
    assert [r["ref"] for r in await logged_in.json("runtime", "list")] == ["demo.sh"]
    shown = await logged_in("runtime", "show", "demo.sh")
    assert shown.exit_code == 0 and "Runtime: demo.sh" in shown.stdout
    listed = await logged_in("policy", "list", "--pack", "demo")
    assert listed.exit_code == 0, listed.output
    assert "demo.serial" in listed.stdout and "1 at once" in listed.stdout and "exempt" in listed.stdout
    policy = await logged_in.json("policy", "show", "demo.serial")
    assert (policy["kind"], policy["apply_to_manual"]) == ("concurrency", False)
    missing = await logged_in("policy", "show", "demo.none")
    assert missing.exit_code == 1 and "not found" in missing.stderr


async def test_an_identity_key_takes_a_login(logged_in: Cli, user: models.Identity) -> None:
    result = await logged_in(
        "key", "set", "alice_token", "s3cret-value", "--owner-type", "identity", "--owner", user.login
    )
    assert result.exit_code == 0, result.output
    key = await logged_in.json("key", "show", "alice_token")
    assert (key["owner_type"], key["owner_identity"]) == ("identity", user.id)
    unknown = await logged_in("key", "set", "x_token", "v", "--owner-type", "identity", "--owner", "nobody")
    assert unknown.exit_code == 1 and "Identity with login 'nobody' not found" in unknown.stderr
