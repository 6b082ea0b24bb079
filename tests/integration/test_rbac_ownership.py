"""Ownership and scoped tokens (issue #10 items 2-4; docs/security.md): an identity reaches only its own
keys, executions and inquiries; execution and sensor tokens see only their action's or pack's keys;
a pack-limited permission set manages only its packs. Identities: tests/integration/rbac_support.py.
"""

from __future__ import annotations

from typing import Any

import httpx

from attune.db import models
from attune.db.repos import identities
from attune.platform import Platform
from attune.worker.run_execution import finish
from tests.identities import client_for, make_identity
from tests.integration.rbac_support import (
    ADMIN,
    OPERATOR,
    VIEWER,
    Clients,
    add_rows,
    assert_forbidden,
)


async def test_a_second_identity_cannot_touch_the_first_ones_keys(
    app: Any, platform: Platform, clients: Clients, password_hash: str
) -> None:
    first = clients.by_role[OPERATOR]
    second_identity = await make_identity(platform, "oscar", password_hash, "core.operator")
    body = {"ref": "olga.token", "owner_type": "identity", "name": "token", "value": "olga-secret"}
    created = await first.post("/api/v1/keys", json=body)
    assert created.status_code == 201 and created.json()["data"]["owner_identity"] == clients.ids[OPERATOR]
    async with client_for(app, platform, second_identity) as second:
        assert_forbidden(await second.get("/api/v1/keys/olga.token"), "read")
        assert_forbidden(await second.put("/api/v1/keys/olga.token", json={"value": "mine"}), "update")
        assert_forbidden(await second.delete("/api/v1/keys/olga.token"), "delete")
        listed = (await second.get("/api/v1/keys")).json()["data"]
        assert "olga.token" not in {item["ref"] for item in listed}
        # Nor can it create a key in the first one's name.
        forged = {**body, "ref": "forged.token", "owner_identity": clients.ids[OPERATOR]}
        assert_forbidden(await second.post("/api/v1/keys", json=forged), "create for another")
    assert_forbidden(await clients.by_role[VIEWER].get("/api/v1/keys/olga.token"), "viewer reads")
    assert (await first.get("/api/v1/keys/olga.token")).json()["data"]["value"] == "olga-secret"
    assert (await clients.by_role[ADMIN].get("/api/v1/keys/olga.token")).status_code == 200


async def test_pack_keys_are_visible_to_identities_granted_on_that_pack(
    app: Any, platform: Platform, api: httpx.AsyncClient, demo: dict[str, Any], password_hash: str
) -> None:
    for pack in ("demo", "other"):
        body = {"ref": f"{pack}.k", "owner_type": "pack", "owner_pack_ref": pack, "name": "k", "value": pack}
        assert (await api.post("/api/v1/keys", json=body)).status_code == 201
    grants = [{"resource": "keys", "actions": ["read", "update"], "constraints": {"packs": ["demo"]}}]
    made = await api.post("/api/v1/permissions/sets", json={"ref": "demo.keys", "grants": grants})
    assert made.status_code == 201, made.text
    holder = await make_identity(platform, "pia", password_hash, "demo.keys")
    async with client_for(app, platform, holder) as client:
        assert (await client.get("/api/v1/keys/demo.k")).json()["data"]["value"] == "demo"
        assert (await client.put("/api/v1/keys/demo.k", json={"value": "d2"})).status_code == 200
        assert_forbidden(await client.get("/api/v1/keys/other.k"), "other pack")
        assert_forbidden(await client.delete("/api/v1/keys/demo.k"), "no delete grant")
        assert [item["ref"] for item in (await client.get("/api/v1/keys")).json()["data"]] == ["demo.k"]


async def test_a_second_identity_cannot_read_cancel_or_answer_the_first_ones_executions(
    app: Any, platform: Platform, api: httpx.AsyncClient, demo: dict[str, Any], password_hash: str
) -> None:
    own_only = [
        {"resource": "actions", "actions": ["read", "execute"]},
        {"resource": "executions", "actions": ["read", "update"], "constraints": {"owner": "self"}},
        {"resource": "inquiries", "actions": ["read", "respond"], "constraints": {"owner": "self"}},
    ]
    made = await api.post("/api/v1/permissions/sets", json={"ref": "demo.own", "grants": own_only})
    assert made.status_code == 201, made.text
    first_identity = await make_identity(platform, "fred", password_hash, "demo.own")
    second_identity = await make_identity(platform, "sam", password_hash, "demo.own")
    async with (
        client_for(app, platform, first_identity) as first,
        client_for(app, platform, second_identity) as second,
    ):
        run = await first.post(
            "/api/v1/executions/execute", json={"action_ref": "demo.notify", "parameters": {}}
        )
        assert run.status_code == 201, run.text
        execution_id = run.json()["data"]["id"]
        assert run.json()["data"]["executor"] == first_identity.id
        asked = await api.post("/api/v1/inquiries", json={"execution": execution_id, "prompt": "Go?"})
        inquiry_id = asked.json()["data"]["id"]

        assert (await first.get(f"/api/v1/executions/{execution_id}")).status_code == 200
        assert [e["id"] for e in (await first.get("/api/v1/executions")).json()["data"]] == [execution_id]
        assert (await first.get(f"/api/v1/inquiries/{inquiry_id}")).status_code == 200

        assert_forbidden(await second.get(f"/api/v1/executions/{execution_id}"), "read")
        assert_forbidden(await second.get(f"/api/v1/executions/{execution_id}/logs"), "logs")
        assert_forbidden(await second.post(f"/api/v1/executions/{execution_id}/cancel"), "cancel")
        assert_forbidden(await second.post(f"/api/v1/executions/{execution_id}/rerun"), "rerun")
        assert_forbidden(await second.get(f"/api/v1/inquiries/{inquiry_id}"), "read inquiry")
        assert_forbidden(
            await second.post(f"/api/v1/inquiries/{inquiry_id}/respond", json={"response": "yes"}), "respond"
        )
        assert_forbidden(await second.delete(f"/api/v1/inquiries/{inquiry_id}"), "delete inquiry")
        assert_forbidden(await second.get("/api/v1/executions/stats"), "stats of everyone")
        assert (await second.get("/api/v1/executions")).json()["data"] == []
        assert (await second.get("/api/v1/inquiries")).json()["data"] == []

        cancelled = await first.post(f"/api/v1/executions/{execution_id}/cancel")
        assert cancelled.status_code == 200, cancelled.text


async def test_an_execution_token_reads_only_its_actions_keys_and_cannot_answer_its_own_inquiry(
    app: Any, platform: Platform, api: httpx.AsyncClient, user: models.Identity, demo: dict[str, Any]
) -> None:
    keys = [
        {"ref": "sys.k", "owner_type": "system", "name": "sk", "value": "system"},
        {"ref": "demo.k", "owner_type": "pack", "owner_pack_ref": "demo", "name": "k", "value": "pack"},
        {
            "ref": "demo.notify.k",
            "owner_type": "action",
            "owner_action_ref": "demo.notify",
            "name": "k",
            "value": "a",
        },
        {"ref": "other.k", "owner_type": "pack", "owner_pack_ref": "other", "name": "k", "value": "other"},
        {
            "ref": "other.x.k",
            "owner_type": "action",
            "owner_action_ref": "other.x",
            "name": "k",
            "value": "x",
        },
        {"ref": "alice.k", "owner_type": "identity", "owner_identity": user.id, "name": "k", "value": "mine"},
    ]
    for body in keys:
        assert (await api.post("/api/v1/keys", json=body)).status_code == 201, body
    # An execution started by the administrator, waiting on an inquiry it asked.
    execution = models.Execution(
        action=demo["action"],
        action_ref="demo.notify",
        status="running",
        worker=7,
        config={},
        executor=user.id,
    )
    await add_rows(platform, execution)
    child = models.Execution(
        action=demo["action"],
        action_ref="demo.notify",
        status="running",
        parent=execution.id,
        executor=user.id,
    )
    await add_rows(platform, child)
    asked = await api.post("/api/v1/inquiries", json={"execution": execution.id, "prompt": "Approve?"})
    inquiry_id = asked.json()["data"]["id"]

    def token_of(row: models.Execution) -> str:
        token, _ = platform.tokens.issue(
            user.id,
            f"execution:{row.id}",
            "execution",
            600,
            metadata={"execution_id": row.id, "action_ref": row.action_ref},
        )
        return token

    for row in (execution, child):
        headers = {"Authorization": f"Bearer {token_of(row)}"}
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://attune.test", headers=headers
        ) as worker_side:
            for ref, value in (("sys.k", "system"), ("demo.k", "pack"), ("demo.notify.k", "a")):
                got = await worker_side.get(f"/api/v1/keys/{ref}")
                assert got.status_code == 200 and got.json()["data"]["value"] == value, ref
            for ref in ("other.k", "other.x.k", "alice.k"):
                assert_forbidden(await worker_side.get(f"/api/v1/keys/{ref}"), ref)
            listed = {item["ref"] for item in (await worker_side.get("/api/v1/keys")).json()["data"]}
            assert listed == {"sys.k", "demo.k", "demo.notify.k"}
            answer = await worker_side.post(
                f"/api/v1/inquiries/{inquiry_id}/respond", json={"response": "yes"}
            )
            assert_forbidden(answer, "respond to its own (or its parent's) inquiry")
    # A token naming another action than its execution runs is no token at all.
    forged, _ = platform.tokens.issue(
        user.id, "x", "execution", 600, metadata={"execution_id": execution.id, "action_ref": "other.x"}
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://attune.test",
        headers={"Authorization": f"Bearer {forged}"},
    ) as forger:
        assert (await forger.get("/api/v1/keys/sys.k")).status_code == 401
    # The administrator, as itself, still may.
    answered = await api.post(f"/api/v1/inquiries/{inquiry_id}/respond", json={"response": "yes"})
    assert answered.status_code == 200, answered.text


async def test_put_never_changes_an_inquiry_status_so_its_execution_does_not_hang(
    api: httpx.AsyncClient, platform: Platform, clients: Clients
) -> None:
    execution = models.Execution(action_ref="demo.ask", status="running", worker=7, config={})
    await add_rows(platform, execution)
    result = {
        "exit_code": 0,
        "duration_ms": 5,
        "succeeded": True,
        "data": {"__inquiry": {"prompt": "Ship it?", "response_schema": {"type": "object"}}},
    }
    assert await finish(platform.db, execution, "completed", result, action_id=0) == "running"
    [inquiry] = (await api.get(f"/api/v1/executions/{execution.id}/inquiries")).json()["data"]
    refused = await api.put(f"/api/v1/inquiries/{inquiry['id']}", json={"status": "responded"})
    assert refused.status_code == 422, refused.text
    assert "respond" in refused.json()["error"]
    assert (await api.get(f"/api/v1/inquiries/{inquiry['id']}")).json()["data"]["status"] == "pending"
    # Only an administrator (or manage on inquiries) reassigns.
    operator = clients.by_role[OPERATOR]
    reassign = {"assigned_to": clients.ids[OPERATOR]}
    assert_forbidden(await operator.put(f"/api/v1/inquiries/{inquiry['id']}", json=reassign), "reassign")
    assert (await api.put(f"/api/v1/inquiries/{inquiry['id']}", json=reassign)).status_code == 200
    # The answer goes through respond, schema-checked, and the execution completes.
    wrong = await operator.post(f"/api/v1/inquiries/{inquiry['id']}/respond", json={"response": "yes"})
    assert wrong.status_code == 422
    ok = await operator.post(f"/api/v1/inquiries/{inquiry['id']}/respond", json={"response": {"ship": True}})
    assert ok.status_code == 200, ok.text
    assert (await api.get(f"/api/v1/executions/{execution.id}")).json()["data"]["status"] == "completed"


async def test_a_sensor_token_uses_only_its_own_packs_keys(
    app: Any, platform: Platform, api: httpx.AsyncClient, demo: dict[str, Any]
) -> None:
    for pack in ("demo", "other"):
        body = {
            "ref": f"{pack}.state",
            "owner_type": "pack",
            "owner_pack_ref": pack,
            "name": "state",
            "value": pack,
        }
        assert (await api.post("/api/v1/keys", json=body)).status_code == 201
    async with platform.db.transaction() as session:
        sensor = await identities.sensor_identity(session, "demo.watcher", ["demo.tick"])
    token, _ = platform.tokens.issue(sensor.id, "demo.watcher", "sensor", 600, scope="sensor")
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://attune.test", headers=headers
    ) as client:
        assert (await client.get("/api/v1/keys/demo.state")).json()["data"]["value"] == "demo"
        assert (await client.put("/api/v1/keys/demo.state", json={"value": "seen"})).status_code == 200
        assert_forbidden(await client.get("/api/v1/keys/other.state"), "another pack's key")
        assert [k["ref"] for k in (await client.get("/api/v1/keys")).json()["data"]] == ["demo.state"]
        assert_forbidden(
            await client.post("/api/v1/executions/execute", json={"action_ref": "demo.notify"}), "run"
        )


async def test_a_pack_limited_set_manages_only_its_packs_automation(
    app: Any, platform: Platform, api: httpx.AsyncClient, demo: dict[str, Any], password_hash: str
) -> None:
    other_trigger = {"ref": "other.tick", "pack_ref": "other", "label": "Tick"}
    assert (await api.post("/api/v1/triggers", json=other_trigger)).status_code == 201
    for pack in ("demo", "other"):
        rule = {
            "ref": f"{pack}.admins_rule",
            "pack_ref": pack,
            "label": "R",
            "action_ref": "demo.notify" if pack == "demo" else "other.x",
            "trigger_ref": f"{pack}.tick",
        }
        assert (await api.post("/api/v1/rules", json=rule)).status_code == 201
    grants = [
        {
            "resource": "rules",
            "actions": ["read", "create", "update", "delete"],
            "constraints": {"packs": ["demo"]},
        },
        {"resource": "actions", "actions": ["read", "execute"], "constraints": {"packs": ["demo"]}},
    ]
    assert (
        await api.post("/api/v1/permissions/sets", json={"ref": "demo.ops", "grants": grants})
    ).status_code == 201
    holder = await make_identity(platform, "dora", password_hash, "demo.ops")
    async with client_for(app, platform, holder) as client:
        listed = [r["ref"] for r in (await client.get("/api/v1/rules")).json()["data"]]
        assert listed == ["demo.admins_rule"]
        assert [a["ref"] for a in (await client.get("/api/v1/actions")).json()["data"]] == ["demo.notify"]
        mine = {
            "ref": "demo.mine",
            "pack_ref": "demo",
            "label": "M",
            "action_ref": "demo.notify",
            "trigger_ref": "demo.tick",
        }
        assert (await client.post("/api/v1/rules", json=mine)).status_code == 201
        theirs = {**mine, "ref": "other.mine", "pack_ref": "other", "trigger_ref": "other.tick"}
        assert_forbidden(await client.post("/api/v1/rules", json=theirs), "create in another pack")
        assert (await client.put("/api/v1/rules/demo.mine", json={"label": "M2"})).status_code == 200
        assert_forbidden(await client.get("/api/v1/rules/other.admins_rule"), "read another pack's rule")
        assert_forbidden(await client.put("/api/v1/rules/other.admins_rule", json={"label": "x"}), "update")
        assert_forbidden(await client.delete("/api/v1/rules/other.admins_rule"), "delete")
        assert (await client.delete("/api/v1/rules/demo.mine")).status_code == 200
        run = await client.post(
            "/api/v1/executions/execute", json={"action_ref": "demo.notify", "parameters": {}}
        )
        assert run.status_code == 201, run.text
        assert_forbidden(
            await client.post("/api/v1/executions/execute", json={"action_ref": "other.x"}), "run"
        )
        # Nothing beyond its grants.
        assert_forbidden(await client.get("/api/v1/triggers"), "no trigger grant at all")
