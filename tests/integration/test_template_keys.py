"""Keys in templates (#12 item 2): ``{{ key.system.x }}`` / ``st2kv.`` in rule parameters.

Before, ``{{ kv.system.x }}`` and ``{{ st2kv.system.x }}`` rendered as empty strings, silently.
"""

from __future__ import annotations

import json

import httpx

from attune.db import models
from attune.db.repos import executions as execution_repo
from attune.platform import Platform
from tests.integration.test_executor import EVENTS, add, add_rule, rows, running_executor, seed_pack, settle

KEYS = "/api/v1/keys"


async def make_key(api: httpx.AsyncClient, body: dict[str, object]) -> None:
    response = await api.post(KEYS, json=body)
    assert response.status_code == 201, response.text


async def test_rule_parameters_read_system_and_pack_keys(api: httpx.AsyncClient, platform: Platform) -> None:
    pack, action, trigger = await seed_pack(platform)
    await make_key(
        api, {"ref": "region", "owner_type": "system", "name": "region", "value": "eu", "encrypted": False}
    )
    await make_key(
        api,
        {
            "ref": "demo.channel",
            "owner_type": "pack",
            "owner_pack_ref": "demo",
            "name": "channel",
            "value": "#ops",
            "encrypted": False,
        },
    )
    other = models.Pack(ref="other", label="other", version="1.0.0", config={})
    await add(platform, other)
    await make_key(
        api,
        {
            "ref": "other.channel",
            "owner_type": "pack",
            "owner_pack_ref": "other",
            "name": "secretive",
            "value": "#theirs",
            "encrypted": False,
        },
    )
    await add_rule(
        platform,
        pack,
        action,
        trigger,
        "with_keys",
        action_params={
            "region": "{{ key.system.region }}",
            "alias": "{{ st2kv.system.region }}",
            "called": "{{ st2kv('system.region') }}",
            "channel": "to {{ key.pack.channel }}",
            "foreign": "{{ key.pack.secretive }}",
        },
    )
    async with running_executor(platform):
        response = await api.post(EVENTS, json={"trigger_ref": trigger.ref, "payload": {}})
        assert response.status_code == 201
        await settle(platform)
    [enforcement] = await rows(platform, models.Enforcement)
    assert enforcement.config == {
        "region": "eu",
        "alias": "eu",
        "called": "eu",
        "channel": "to #ops",
        "foreign": None,  # another pack's key is not readable from this rule
    }


async def test_an_encrypted_key_opens_only_with_decrypt_kv_and_is_never_stored_in_clear(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    pack, action, trigger = await seed_pack(platform)
    await make_key(
        api, {"ref": "api_token", "owner_type": "system", "name": "api_token", "value": "s3cr3t-value"}
    )
    await add_rule(
        platform,
        pack,
        action,
        trigger,
        "with_secret",
        action_params={
            "sealed": "{{ key.system.api_token }}",
            "header": "Bearer {{ key.system.api_token | decrypt_kv }}",
        },
    )
    async with running_executor(platform):
        response = await api.post(EVENTS, json={"trigger_ref": trigger.ref, "payload": {}})
        assert response.status_code == 201
        await settle(platform)
    [enforcement] = await rows(platform, models.Enforcement)
    stored = json.dumps(enforcement.config)
    assert "s3cr3t-value" not in stored
    assert enforcement.config["sealed"] != "s3cr3t-value"  # without decrypt_kv: the stored ciphertext
    [execution] = await rows(platform, models.Execution)
    assert "s3cr3t-value" not in json.dumps(execution.config)
    assert execution.config["header"] == "********"
    assert execution_repo.full_parameters(execution, platform.secrets)["header"] == "Bearer s3cr3t-value"
