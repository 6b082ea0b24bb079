"""The real ``attune`` executable against a real server.

The SQLite pass runs the embedded server; the PostgreSQL pass the scaled deployment (api,
executor, worker and sensor as separate processes on RabbitMQ). The client's configuration lives
in a temporary HOME / XDG_CONFIG_HOME.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from attune.testing.deployment import DEFAULT_LOGIN, Deployment
from tests.acceptance.harness import running_deployment

ATTUNE = Path(sys.executable).with_name("attune")


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with running_deployment(tmp_path_factory.mktemp("cli")) as deployment:
        yield deployment


class Attune:
    """Runs the installed ``attune`` script with a private configuration directory."""

    def __init__(self, deployment: Deployment, home: Path) -> None:
        self.home = home
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("ATTUNE")},
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "ATTUNE_API_URL": deployment.base,
            "NO_COLOR": "1",
        }

    def __call__(
        self, *args: str, input: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(ATTUNE), *args],
            env=self.env,
            cwd=self.home,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def ok(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = self(*args)
        assert result.returncode == 0, f"attune {' '.join(args)}: {result.stdout}\n{result.stderr}"
        return result


@pytest.fixture(scope="module")
def attune(deployment: Deployment, tmp_path_factory: pytest.TempPathFactory) -> Attune:
    home = tmp_path_factory.mktemp("home")
    cli = Attune(deployment, home)
    cli.ok("auth", "login", "-u", DEFAULT_LOGIN["login"], "--password", DEFAULT_LOGIN["password"])
    return cli


def test_login_writes_a_private_config(attune: Attune) -> None:
    config = attune.home / ".config" / "attune" / "config.yaml"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert yaml.safe_load(config.read_text())["profiles"]["default"]["auth_token"]
    assert "test@attune.local" in attune.ok("auth", "whoami").stdout


def test_pack_list_shows_core(attune: Attune) -> None:
    assert "core" in attune.ok("pack", "list").stdout
    refs = [p["ref"] for p in json.loads(attune.ok("pack", "list", "--json").stdout)]
    assert "core" in refs


def test_pack_register_of_a_fixture_pack(attune: Attune, tmp_path: Path) -> None:
    pack = tmp_path / "clidemo"
    (pack / "actions").mkdir(parents=True)
    (pack / "pack.yaml").write_text("ref: clidemo\nlabel: CLI demo\nversion: 0.1.0\n")
    (pack / "actions" / "shout.yaml").write_text(
        "ref: clidemo.shout\nlabel: Shout\nrunner_type: shell\nentry_point: shout.sh\n"
        "parameter_delivery: stdin\nparameter_format: dotenv\n"
        "parameters:\n  word:\n    type: string\n    required: true\n"
    )
    (pack / "actions" / "shout.sh").write_text(
        '#!/bin/sh\nwhile IFS= read -r line; do case "$line" in word=*) w=${line#word=};; esac; done\n'
        'w=$(echo "$w" | tr -d "\'\\"")\necho "$w" | tr a-z A-Z\n'
    )
    result = attune.ok("pack", "register", str(pack), "--skip-tests")
    assert "Pack 'clidemo' registered successfully" in result.stdout
    assert "clidemo.shout" in attune.ok("action", "list", "--pack", "clidemo").stdout
    ran = attune.ok("run", "clidemo.shout", "word=quiet")
    assert "QUIET" in ran.stdout


def test_run_core_echo_prints_its_output(attune: Attune) -> None:
    result = attune("run", "core.echo", "message=hi")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "hi"
    assert "completed" in result.stdout
    # No spinner or control characters when stdout is not a terminal.
    assert "\x1b" not in result.stdout + result.stderr


def test_failing_action_exits_non_zero_with_its_error(attune: Attune) -> None:
    result = attune("run", "core.noop", "exit_code=3", "message=boom")
    assert result.returncode == 1
    assert "failed" in result.stderr
    assert "Command exited with code 3" in result.stderr
    as_json = attune("--json", "action", "execute", "core.noop", "--param", "exit_code=4")
    assert as_json.returncode == 1
    assert json.loads(as_json.stdout)["status"] == "failed"


def test_execution_list_filters_failed_as_json(attune: Attune) -> None:
    failed_ids = {
        json.loads(attune("-j", "run", "core.noop", "exit_code=5").stdout)["id"],
        json.loads(attune("-j", "run", "core.noop", "exit_code=6").stdout)["id"],
    }
    completed = json.loads(attune.ok("-j", "run", "core.echo", "message=ok").stdout)["id"]
    rows = json.loads(attune.ok("execution", "list", "--status", "failed", "--json").stdout)
    ids = {row["id"] for row in rows}
    assert failed_ids <= ids
    assert completed not in ids
    assert {row["status"] for row in rows} == {"failed"}


def test_run_async_returns_the_id_at_once(attune: Attune) -> None:
    data = json.loads(attune.ok("--json", "run", "core.sleep", "seconds=1", "--async").stdout)
    assert data["status"] in ("requested", "scheduling", "scheduled", "running")
    shown = json.loads(attune.ok("--json", "execution", "show", str(data["id"])).stdout)
    assert shown["id"] == data["id"]


def test_rule_create_from_yaml_then_disable(attune: Attune, tmp_path: Path) -> None:
    rule = tmp_path / "rule.yaml"
    rule.write_text(
        "ref: core.cli_every_minute\nlabel: Every minute\ntrigger_ref: core.intervaltimer\n"
        "trigger_params: {unit: minutes, interval: 1}\naction_ref: core.noop\nenabled: true\n"
    )
    created = attune.ok("rule", "create", "--file", str(rule))
    assert "Rule 'core.cli_every_minute' created successfully" in created.stdout
    assert (
        "Rule 'core.cli_every_minute' disabled"
        in attune.ok("rule", "disable", "core.cli_every_minute").stdout
    )
    shown = json.loads(attune.ok("rule", "show", "core.cli_every_minute", "--json").stdout)
    assert shown["enabled"] is False
    listed = attune.ok("rule", "list", "--pack", "core").stdout
    assert "core.cli_every_minute" in listed and "core.intervaltimer" in listed
    disabled = json.loads(attune.ok("rule", "list", "--enabled", "false", "--json").stdout)
    assert [r["ref"] for r in disabled] == ["core.cli_every_minute"]
    assert set(disabled[0]) >= {"trigger_ref", "action_ref", "enabled"}
    attune.ok("rule", "delete", "core.cli_every_minute", "--yes")
    assert "No rules found" in attune.ok("rule", "list", "--pack", "core").stdout


def test_trigger_and_sensor_listings(attune: Attune) -> None:
    triggers = attune.ok("trigger", "list", "--pack", "core").stdout
    assert "core.intervaltimer" in triggers and "Webhook" in triggers
    refs = {t["ref"] for t in json.loads(attune.ok("--json", "trigger", "list").stdout)}
    assert "core.intervaltimer" in refs
    sensors = json.loads(attune.ok("--json", "sensor", "list", "--pack", "core").stdout)
    [ref] = [s["ref"] for s in sensors if s.get("trigger_ref") == "core.intervaltimer"]
    assert ref in attune.ok("sensor", "list").stdout
    assert f"Sensor '{ref}' disabled" in attune.ok("sensor", "disable", ref).stdout
    assert json.loads(attune.ok("--json", "sensor", "show", ref).stdout)["enabled"] is False
    assert f"Sensor '{ref}' enabled" in attune.ok("sensor", "enable", ref).stdout


def test_key_set_encrypt_never_echoes_the_secret(attune: Attune) -> None:
    secret = f"s3cret-{uuid.uuid4().hex}"
    result = attune("key", "set", "cli_secret", secret, "--encrypt")
    assert result.returncode == 0, result.stderr
    assert secret not in result.stdout + result.stderr
    piped = attune("key", "set", "cli_piped", "--encrypt", input=secret + "\n")
    assert piped.returncode == 0, piped.stderr
    assert secret not in piped.stdout + piped.stderr
    assert secret not in attune.ok("key", "show", "cli_piped").stdout
    assert secret not in attune.ok("--json", "key", "list").stdout


def test_help_reads_well(attune: Attune) -> None:
    top = attune.ok("--help").stdout
    for command in ("server", "run", "pack", "execution", "rule", "key", "auth", "config"):
        assert command in top
    for group in (
        "auth",
        "config",
        "pack",
        "action",
        "execution",
        "rule",
        "trigger",
        "sensor",
        "key",
        "inquiry",
        "workflow",
    ):
        text = attune.ok(group, "--help").stdout
        assert "Usage: attune " + group in text
        assert "Commands" in text
    assert "KEY=VALUE" in attune.ok("run", "--help").stdout


def test_usage_errors_exit_2_and_unreachable_server_exits_1(attune: Attune) -> None:
    assert attune("execution", "show", "not-a-number").returncode == 2
    assert attune("pack", "list", "--json", "--yaml").returncode == 2
    unreachable = attune("--api-url", "http://127.0.0.1:9", "pack", "list")
    assert unreachable.returncode == 1
    assert unreachable.stderr.startswith("Error: Cannot reach the Attune API")
