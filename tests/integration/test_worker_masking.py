"""Only secrets are masked in action output: encrypted keys and ``secret: true`` parameters.

Regression tests for issue #12 item 1 (a plain key ``1`` turned ``build 10 of 1001 ok`` into
asterisks; a plain key ``hello`` corrupted workflow outputs).
"""

from __future__ import annotations

from attune.db import models
from attune.domain.enums import OwnerType
from attune.platform import Platform
from tests.integration.test_worker import (
    add_action,
    dispatch,
    running_worker,
    shell_runtime,
    wait_status,
)


async def add_key(platform: Platform, name: str, value: str, *, encrypted: bool) -> None:
    assert platform.secrets is not None
    async with platform.db.transaction() as session:
        session.add(
            models.Key(
                ref=name,
                owner_type=OwnerType.SYSTEM.value,
                name=name,
                encrypted=encrypted,
                encryption_key_hash=platform.secrets.fingerprint if encrypted else None,
                value=platform.secrets.encrypt(value) if encrypted else value,
            )
        )


async def run_echo(platform: Platform, text: str) -> str:
    shell = await shell_runtime(platform)
    action = await add_action(platform, "say", f"echo '{text}'", shell)
    async with running_worker(platform) as worker:
        execution_id = await dispatch(platform, action, worker)
        row = await wait_status(platform, execution_id)
    assert row.status == "completed", row.result
    return str(row.result["stdout"])


async def test_a_plain_one_character_key_does_not_mask_numbers(platform: Platform) -> None:
    await add_key(platform, "flag", "1", encrypted=False)
    assert await run_echo(platform, "build 10 of 1001 ok") == "build 10 of 1001 ok\n"


async def test_a_plain_key_does_not_mask_words_in_output(platform: Platform) -> None:
    await add_key(platform, "greeting", "hello", encrypted=False)
    assert await run_echo(platform, '{"summary": "hello audit"}') == '{"summary": "hello audit"}\n'


async def test_an_encrypted_key_is_still_masked(platform: Platform) -> None:
    await add_key(platform, "token", "tok-0123456789", encrypted=True)
    assert await run_echo(platform, "using tok-0123456789 now") == "using ******** now\n"


async def test_a_short_encrypted_key_is_not_masked_inside_other_words(platform: Platform) -> None:
    await add_key(platform, "pin", "abcd", encrypted=True)
    assert await run_echo(platform, "pin abcd, not abcdef") == "pin ********, not abcdef\n"
