"""Secrets and the environment of a running action (docs/packs.md, docs/security.md): secret parameters
and keys reach the action on stdin only, never in a file; the environment carries the ids, the context,
user variables and a scoped token. The worker harness is test_worker's.
"""

from __future__ import annotations

import hashlib
import sys
import uuid

import pytest
import sqlalchemy as sa

from attune.db import models
from attune.db.repos import executions as execution_repo
from attune.domain.enums import ExecutionStatus, OwnerType
from attune.platform import Platform
from tests.integration.test_worker import (
    PACK,
    add_action,
    dispatch,
    log_dir,
    pack_file,
    running_worker,
    shell_runtime,
    stage_dispatch,
    wait_status,
)


async def test_secret_parameter_reaches_the_action_but_no_file(platform: Platform) -> None:
    secret = f"S3cret-{uuid.uuid4().hex}"
    digest = hashlib.sha256(secret.encode()).hexdigest()
    shell = await shell_runtime(platform)
    pack_file(
        platform,
        "check_secret.sh",
        "IFS= read -r line\n"
        "value=${line#token=\\'}; value=${value%\\'}\n"
        'echo "stdout sees $value"\n'
        'echo "stderr sees $value" >&2\n'
        'if env | grep -q -- "$value"; then exit 4; fi\n'
        f'[ "$(printf %s "$value" | sha256sum | cut -d" " -f1)" = "{digest}" ]\n',
    )
    action = await add_action(
        platform,
        "check_secret",
        "check_secret.sh",
        shell,
        is_adhoc=False,
        parameter_format="dotenv",
        param_schema={"token": {"type": "string", "secret": True}},
    )
    async with running_worker(platform) as worker:
        async with platform.db.transaction() as session:
            execution = await execution_repo.request_execution(
                session, action, {"token": secret}, box=platform.secrets, source_service="test"
            )
            execution.status = ExecutionStatus.SCHEDULED.value
            execution.worker = worker.id
            await session.flush()
            stage_dispatch(session, execution, worker.id)
        row = await wait_status(platform, execution.id)

    assert row.status == "completed", row.result
    assert row.config == {"token": "********"}
    assert secret not in str(row.result)
    assert row.result["stdout"] == "stdout sees ********\n"
    logs = log_dir(platform, execution.id)
    assert (logs / "stderr.log").read_text() == "stderr sees ********\n"
    for path in logs.rglob("*"):
        assert secret not in path.read_text(errors="replace"), path


async def test_key_secrets_arrive_on_stdin_only(platform: Platform) -> None:
    assert platform.secrets is not None
    shell = await shell_runtime(platform)
    check = (
        "import json, os, sys\n"
        "line = sys.stdin.readline()\n"
        "print(line.strip())\n"
        "values = json.loads(line)\n"
        "leaked = any(v in ''.join(os.environ.values()) for v in values.values())\n"
        "expected = {'api_key': 'sys-value-1', 'shared': 'pack-value-2'}\n"
        "sys.exit(0 if values == expected and not leaked else 1)\n"
    )
    action = await add_action(platform, "keys", f'{sys.executable} -c "{check}"', shell)
    async with platform.db.transaction() as session:
        pack_id = (
            await session.execute(sa.select(models.Pack.id).where(models.Pack.ref == PACK))
        ).scalar_one()
        session.add_all(
            [
                models.Key(
                    ref="api_key",
                    owner_type=OwnerType.SYSTEM.value,
                    name="api_key",
                    encrypted=True,
                    encryption_key_hash=platform.secrets.fingerprint,
                    value=platform.secrets.encrypt("sys-value-1"),
                ),
                models.Key(
                    ref="shared",
                    owner_type=OwnerType.SYSTEM.value,
                    name="shared",
                    encrypted=False,
                    value="system-value",
                ),
                models.Key(
                    ref=f"{PACK}.shared",
                    owner_type=OwnerType.PACK.value,
                    owner=PACK,
                    owner_pack=pack_id,
                    owner_pack_ref=PACK,
                    name="shared",
                    encrypted=True,
                    encryption_key_hash=platform.secrets.fingerprint,
                    value=platform.secrets.encrypt("pack-value-2"),
                ),
            ]
        )
    async with running_worker(platform) as worker:
        execution_id = await dispatch(platform, action, worker)
        row = await wait_status(platform, execution_id)

    assert row.status == "completed", row.result
    assert row.result["stdout"] == '{"api_key":"********","shared":"********"}\n'


async def test_environment_carries_ids_context_user_vars_and_a_scoped_token(platform: Platform) -> None:
    shell = await shell_runtime(platform)
    script = (
        'printf \'{"token":"%s","exec":"%s","action":"%s","ctx":"%s","num":"%s","mine":"%s","url":"%s",'
        '"delivery":"%s","format":"%s","jwt_secret":"%s"}\' '
        '"$ATTUNE_API_TOKEN" "$ATTUNE_EXEC_ID" "$ATTUNE_ACTION" '
        '"$ATTUNE_CONTEXT_USER" "$ATTUNE_CONTEXT_COUNT" '
        '"$MY_VAR" "$ATTUNE_API_URL" "$ATTUNE_PARAMETER_DELIVERY" "$ATTUNE_PARAMETER_FORMAT" '
        '"$ATTUNE__SECURITY__JWT_SECRET"'
    )
    action = await add_action(platform, "env", script, shell, output_format="json")
    mp = pytest.MonkeyPatch()
    mp.setenv("ATTUNE__SECURITY__JWT_SECRET", "must-not-leak")
    try:
        async with running_worker(platform) as worker:
            execution_id = await dispatch(
                platform,
                action,
                worker,
                {"context": {"user": "bob", "count": 3}},
                env_vars={"MY_VAR": "mine", "ATTUNE_EXEC_ID": "999"},
                executor=None,
            )
            row = await wait_status(platform, execution_id)
    finally:
        mp.undo()

    assert row.status == "completed", row.result
    data = row.result["data"]
    assert data["exec"] == str(execution_id)  # env_vars never override ATTUNE_*
    assert data["action"] == action.ref
    assert data["ctx"] == "bob"
    assert data["num"] == "3"
    assert data["mine"] == "mine"
    assert data["url"].startswith("http")
    assert (data["delivery"], data["format"]) == ("stdin", "json")
    assert data["jwt_secret"] == ""
    claims = platform.tokens.decode(data["token"])
    assert claims.token_type == "execution"
    assert claims.metadata == {"execution_id": execution_id, "action_ref": "wt.env"}
    assert claims.login == f"execution:{execution_id}"
