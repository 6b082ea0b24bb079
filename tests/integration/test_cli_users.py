"""``attune user`` and ``attune permission`` against the API app in-process (docs/security.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from attune.db import models
from attune.db.repos import identities
from attune.platform import Platform
from attune.settings import Settings
from tests.integration.test_cli_commands import Cli, cli, logged_in  # noqa: F401 (fixtures)

pytestmark = pytest.mark.usefixtures("user")


async def test_create_grant_show_revoke_and_delete_a_user(logged_in: Cli) -> None:  # noqa: F811
    created = await logged_in.json(
        "user", "create", "vera", "--password", "Vera-Passw0rd", "--display-name", "V"
    )
    assert created["login"] == "vera" and created["is_admin"] is False
    granted = await logged_in("permission", "grant", "vera", "core.viewer")
    assert granted.exit_code == 0, granted.output
    shown = await logged_in.json("user", "show", "vera")
    assert shown["permissions"]["permission_sets"] == ["core.viewer"]
    users = {row["login"]: row for row in await logged_in.json("user", "list")}
    assert users["vera"]["permission_sets"] == ["core.viewer"] and users["alice"]["is_admin"] is True

    made = await logged_in(
        "permission",
        "sets",
        "create",
        "ops.rules",
        "--grant",
        "rules:read,update@packs=ops",
        "--label",
        "Ops",
    )
    assert made.exit_code == 0, made.output
    detail = await logged_in.json("permission", "sets", "show", "ops.rules")
    assert detail["grants"] == [
        {"resource": "rules", "actions": ["read", "update"], "constraints": {"packs": ["ops"]}}
    ]
    refs = {row["ref"] for row in await logged_in.json("permission", "sets", "list")}
    assert {"core.admin", "core.operator", "core.viewer", "ops.rules"} <= refs

    revoked = await logged_in("permission", "revoke", "vera", "core.viewer")
    assert revoked.exit_code == 0, revoked.output
    assert (await logged_in.json("user", "show", "vera"))["permissions"]["permission_sets"] == []
    again = await logged_in("permission", "revoke", "vera", "core.viewer")
    assert again.exit_code == 1 and "does not hold" in again.stderr

    changed = await logged_in("user", "passwd", "vera", "--password", "Other-Passw0rd")
    assert changed.exit_code == 0, changed.output
    deleted = await logged_in("user", "delete", "vera", "--yes")
    assert deleted.exit_code == 0, deleted.output
    assert "vera" not in {row["login"] for row in await logged_in.json("user", "list")}


async def test_a_viewer_is_refused_with_the_servers_message(logged_in: Cli, platform: Platform) -> None:  # noqa: F811
    await logged_in.json("user", "create", "vic", "--password", "Vic-Passw0rd!")
    assert (await logged_in("permission", "grant", "vic", "core.viewer")).exit_code == 0
    assert (await logged_in("auth", "logout")).exit_code == 0
    assert (await logged_in("auth", "login", "-u", "vic", "--password", "Vic-Passw0rd!")).exit_code == 0
    refused = await logged_in("user", "create", "eve", "--password", "Eve-Passw0rd!")
    assert refused.exit_code == 1
    assert "403" in refused.stderr and "You may not create identities" in refused.stderr


async def test_the_first_administrator_is_created_in_the_database(
    cli: Cli,  # noqa: F811
    settings: Settings,
    platform: Platform,
    tmp_path: Path,
) -> None:
    config = tmp_path / "server.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "database": {"url": settings.database.url},
                "security": {"jwt_secret": "x" * 40},
                "data_dir": str(tmp_path),
            }
        )
    )
    result = await cli(
        "user", "create", "root", "--admin", "--password", "Root-Passw0rd", "--config", str(config)
    )
    assert result.exit_code == 0, result.output
    async with platform.db.session() as session:
        row: Any = await identities.by_login(session, "root")
    assert isinstance(row, models.Identity) and row.is_admin
