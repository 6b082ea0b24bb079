"""Permission sets, ownership and execution tokens (issue #10 items 2-4; docs/security.md).

``api`` acts for the fixture administrator; the other identities are made here with the built-in
sets ``core.operator`` and ``core.viewer``, a custom owner-only set, or no set at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from attune.bootstrap import DEFAULT_LOGIN, bootstrap
from attune.db import models
from attune.db.repos import identities
from attune.platform import Platform
from attune.worker.run_execution import finish
from tests.identities import client_for, make_identity

ADMIN, OPERATOR, VIEWER, NOBODY = "admin", "operator", "viewer", "nobody"
ROLES = (ADMIN, OPERATOR, VIEWER, NOBODY)
READERS = frozenset({ADMIN, OPERATOR, VIEWER})
RUNNERS = frozenset({ADMIN, OPERATOR})
ADMINS = frozenset({ADMIN})


async def _add(platform: Platform, *rows: Any) -> None:
    async with platform.db.transaction() as session:
        session.add_all(rows)
        await session.flush()


@pytest.fixture
async def demo(platform: Platform) -> dict[str, Any]:
    """Packs ``demo`` and ``other``; action ``demo.notify``, trigger ``demo.tick``, action ``other.x``."""
    async with platform.db.transaction() as session:
        demo_pack = models.Pack(ref="demo", label="Demo", version="1.0.0")
        other_pack = models.Pack(ref="other", label="Other", version="1.0.0")
        session.add_all([demo_pack, other_pack])
        await session.flush()
        action = models.Action(
            ref="demo.notify",
            pack=demo_pack.id,
            pack_ref="demo",
            label="Notify",
            description="",
            entrypoint="echo hi",
            param_schema={"to": {"type": "string"}},
        )
        other_action = models.Action(
            ref="other.x", pack=other_pack.id, pack_ref="other", label="X", description="", entrypoint="x"
        )
        trigger = models.Trigger(
            ref="demo.tick", pack=demo_pack.id, pack_ref="demo", label="Tick", enabled=True
        )
        session.add_all([action, other_action, trigger])
        await session.flush()
        return {"pack": demo_pack.id, "other_pack": other_pack.id, "action": action.id}


@dataclass
class Clients:
    by_role: dict[str, httpx.AsyncClient]
    ids: dict[str, int]


@pytest.fixture
async def clients(
    app: Any, platform: Platform, api: httpx.AsyncClient, user: models.Identity, password_hash: str
) -> Any:
    operator = await make_identity(platform, "olga", password_hash, "core.operator")
    viewer = await make_identity(platform, "victor", password_hash, "core.viewer")
    nobody = await make_identity(platform, "nora", password_hash)
    by_role = {
        ADMIN: api,
        OPERATOR: client_for(app, platform, operator),
        VIEWER: client_for(app, platform, viewer),
        NOBODY: client_for(app, platform, nobody),
    }
    ids = {ADMIN: user.id, OPERATOR: operator.id, VIEWER: viewer.id, NOBODY: nobody.id}
    try:
        yield Clients(by_role, ids)
    finally:
        for role in (OPERATOR, VIEWER, NOBODY):
            await by_role[role].aclose()


def _assert_forbidden(response: httpx.Response, label: str) -> None:
    assert response.status_code == 403, f"{label}: {response.status_code} {response.text}"
    body = response.json()
    assert body["code"] == "FORBIDDEN" and isinstance(body["error"], str) and body["error"], label


# (method, path, body, roles allowed, status an allowed role gets — None: anything but 403/5xx)
MATRIX: list[tuple[str, str, Any, frozenset[str], int | None]] = [
    # packs
    ("GET", "/api/v1/packs", None, READERS, 200),
    ("GET", "/api/v1/packs/demo", None, READERS, 200),
    ("POST", "/api/v1/packs", {"ref": "p{role}", "label": "P", "version": "1.0.0"}, ADMINS, 201),
    ("PUT", "/api/v1/packs/demo", {"label": "Demo!"}, ADMINS, 200),
    ("DELETE", "/api/v1/packs/nope", None, ADMINS, 404),
    ("POST", "/api/v1/packs/install", {"source": "/nonexistent"}, ADMINS, None),
    ("POST", "/api/v1/packs/register", {"path": "/nonexistent"}, ADMINS, None),
    ("POST", "/api/v1/packs/build-envs", {"packs": []}, ADMINS, None),
    ("POST", "/api/v1/packs/download", {"packs": []}, ADMINS, None),
    ("GET", "/api/v1/packs/demo/tests", None, READERS, 200),
    # actions
    ("GET", "/api/v1/actions", None, READERS, 200),
    ("GET", "/api/v1/actions/demo.notify", None, READERS, 200),
    (
        "POST",
        "/api/v1/actions",
        {"ref": "demo.a{role}", "pack_ref": "demo", "label": "A", "entrypoint": "echo a"},
        RUNNERS,
        201,
    ),
    ("DELETE", "/api/v1/actions/demo.none", None, RUNNERS, 404),
    ("POST", "/api/v1/executions/execute", {"action_ref": "demo.notify", "parameters": {}}, RUNNERS, 201),
    # triggers, sensors, rules, webhooks
    ("GET", "/api/v1/triggers", None, READERS, 200),
    ("POST", "/api/v1/triggers", {"ref": "demo.t{role}", "pack_ref": "demo", "label": "T"}, RUNNERS, 201),
    ("PUT", "/api/v1/triggers/demo.tick", {"label": "Tock"}, RUNNERS, 200),
    ("GET", "/api/v1/sensors", None, READERS, 200),
    ("DELETE", "/api/v1/sensors/demo.none", None, RUNNERS, 404),
    ("GET", "/api/v1/rules", None, READERS, 200),
    ("POST", "/api/v1/rules/demo.none/enable", None, RUNNERS, 404),
    ("GET", "/api/v1/triggers/demo.tick/webhooks/config", None, READERS, None),
    ("POST", "/api/v1/triggers/demo.tick/webhooks/enable", None, RUNNERS, 200),
    # executions, events, enforcements, inquiries
    ("GET", "/api/v1/executions", None, READERS, 200),
    ("GET", "/api/v1/executions/stats", None, READERS, 200),
    ("POST", "/api/v1/executions/999999/cancel", None, RUNNERS, 404),
    ("GET", "/api/v1/events", None, READERS, 200),
    ("GET", "/api/v1/enforcements", None, READERS, 200),
    ("GET", "/api/v1/inquiries", None, READERS, 200),
    ("PUT", "/api/v1/inquiries/999999", {"assigned_to": 1}, ADMINS, 404),
    ("DELETE", "/api/v1/inquiries/999999", None, ADMINS, 404),
    # keys: an operator manages its own, only an administrator system keys
    ("GET", "/api/v1/keys", None, READERS, 200),
    (
        "POST",
        "/api/v1/keys",
        {"ref": "mine.{role}", "owner_type": "identity", "name": "token", "value": "s3cret"},
        RUNNERS,
        201,
    ),
    (
        "POST",
        "/api/v1/keys",
        {"ref": "sys.{role}", "owner_type": "system", "name": "sys{role}", "value": "v"},
        ADMINS,
        201,
    ),
    # workflows
    ("GET", "/api/v1/workflows", None, READERS, 200),
    ("POST", "/api/v1/workflows/validate", {"definition": {}}, READERS, None),
    ("DELETE", "/api/v1/workflows/demo.none", None, RUNNERS, 404),
    # runtimes, workers, policies, history, analytics
    ("GET", "/api/v1/runtimes", None, READERS, 200),
    ("DELETE", "/api/v1/runtimes/demo.none", None, ADMINS, 404),
    ("GET", "/api/v1/workers", None, READERS, 200),
    ("GET", "/api/v1/policies", None, READERS, 200),
    ("GET", "/api/v1/history/execution", None, READERS, 200),
    ("GET", "/api/v1/analytics/dashboard", None, READERS, 200),
    # identities and permission sets: administrators
    ("GET", "/api/v1/identities", None, ADMINS, 200),
    (
        "POST",
        "/api/v1/identities",
        {"login": "new-{role}", "password": "Passw0rd-{role}", "display_name": "N"},
        ADMINS,
        201,
    ),
    ("GET", "/api/v1/permissions/sets", None, ADMINS, 200),
    (
        "POST",
        "/api/v1/permissions/sets",
        {"ref": "demo.s{role}", "grants": [{"resource": "rules", "actions": ["read"]}]},
        ADMINS,
        201,
    ),
    ("DELETE", "/api/v1/permissions/assignments/999999", None, ADMINS, 404),
]


def _fill(value: Any, role: str) -> Any:
    if isinstance(value, str):
        return value.replace("{role}", role)
    if isinstance(value, dict):
        return {key: _fill(item, role) for key, item in value.items()}
    if isinstance(value, list):
        return [_fill(item, role) for item in value]
    return value


async def test_permission_matrix_over_every_route_family(clients: Clients, demo: dict[str, Any]) -> None:
    for method, path, body, allowed, status in MATRIX:
        for role in ROLES:
            client = clients.by_role[role]
            payload = _fill(body, role)
            response = (
                await client.request(method, path, json=payload)
                if payload is not None
                else (await client.request(method, path))
            )
            label = f"{role} {method} {path}"
            if role in allowed:
                assert response.status_code != 403, f"{label}: {response.text}"
                assert response.status_code < 500, f"{label}: {response.text}"
                if status is not None:
                    assert response.status_code == status, f"{label}: {response.text}"
            else:
                _assert_forbidden(response, label)


async def test_everyone_reads_its_own_permissions_in_the_ui_shape(clients: Clients) -> None:
    expected_sets = {ADMIN: [], OPERATOR: ["core.operator"], VIEWER: ["core.viewer"], NOBODY: []}
    for role in ROLES:
        identity_id = clients.ids[role]
        response = await clients.by_role[role].get(f"/api/v1/identities/{identity_id}/permissions")
        assert response.status_code == 200, response.text
        data = response.json()["data"]
        assert set(data) == {"identity_id", "login", "is_admin", "permission_sets", "grants"}
        assert data["identity_id"] == identity_id
        assert data["is_admin"] is (role == ADMIN)
        assert data["permission_sets"] == expected_sets[role]
        for grant in data["grants"]:
            assert set(grant) == {"resource", "actions", "constraints"}
        own = await clients.by_role[role].get(f"/api/v1/identities/{identity_id}")
        assert own.status_code == 200 and own.json()["data"]["id"] == identity_id
    viewer_grants = (
        await clients.by_role[VIEWER].get(f"/api/v1/identities/{clients.ids[VIEWER]}/permissions")
    ).json()["data"]["grants"]
    # The viewer may read but create, update, delete or execute nothing.
    assert all(set(grant["actions"]) == {"read"} for grant in viewer_grants)
    # Nobody else's permissions.
    other = await clients.by_role[VIEWER].get(f"/api/v1/identities/{clients.ids[OPERATOR]}/permissions")
    _assert_forbidden(other, "viewer reads the operator's permissions")


async def test_lists_show_only_what_the_caller_may_read(
    clients: Clients, platform: Platform, demo: dict[str, Any]
) -> None:
    operator, viewer = clients.by_role[OPERATOR], clients.by_role[VIEWER]
    admin = clients.by_role[ADMIN]
    for role, client in ((ADMIN, admin), (OPERATOR, operator)):
        body = {"ref": f"own.{role}", "owner_type": "identity", "name": "token", "value": f"v-{role}"}
        assert (await client.post("/api/v1/keys", json=body)).status_code == 201
    system = {"ref": "sys.shared", "owner_type": "system", "name": "shared", "value": "v"}
    assert (await admin.post("/api/v1/keys", json=system)).status_code == 201

    def refs(response: httpx.Response) -> set[str]:
        assert response.status_code == 200, response.text
        return {item["ref"] for item in response.json()["data"]}

    assert refs(await admin.get("/api/v1/keys")) == {"own.admin", "own.operator", "sys.shared"}
    assert refs(await operator.get("/api/v1/keys")) == {"own.operator"}
    assert refs(await viewer.get("/api/v1/keys")) == set()
    assert (await operator.get("/api/v1/keys")).json()["pagination"]["total_items"] == 1
    _assert_forbidden(await clients.by_role[NOBODY].get("/api/v1/keys"), "nobody lists keys")


async def test_a_second_identity_cannot_touch_the_first_ones_keys(
    app: Any, platform: Platform, clients: Clients, password_hash: str
) -> None:
    first = clients.by_role[OPERATOR]
    second_identity = await make_identity(platform, "oscar", password_hash, "core.operator")
    body = {"ref": "olga.token", "owner_type": "identity", "name": "token", "value": "olga-secret"}
    created = await first.post("/api/v1/keys", json=body)
    assert created.status_code == 201 and created.json()["data"]["owner_identity"] == clients.ids[OPERATOR]
    async with client_for(app, platform, second_identity) as second:
        _assert_forbidden(await second.get("/api/v1/keys/olga.token"), "read")
        _assert_forbidden(await second.put("/api/v1/keys/olga.token", json={"value": "mine"}), "update")
        _assert_forbidden(await second.delete("/api/v1/keys/olga.token"), "delete")
        listed = (await second.get("/api/v1/keys")).json()["data"]
        assert "olga.token" not in {item["ref"] for item in listed}
        # Nor can it create a key in the first one's name.
        forged = {**body, "ref": "forged.token", "owner_identity": clients.ids[OPERATOR]}
        _assert_forbidden(await second.post("/api/v1/keys", json=forged), "create for another")
    _assert_forbidden(await clients.by_role[VIEWER].get("/api/v1/keys/olga.token"), "viewer reads")
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
        _assert_forbidden(await client.get("/api/v1/keys/other.k"), "other pack")
        _assert_forbidden(await client.delete("/api/v1/keys/demo.k"), "no delete grant")
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

        _assert_forbidden(await second.get(f"/api/v1/executions/{execution_id}"), "read")
        _assert_forbidden(await second.get(f"/api/v1/executions/{execution_id}/logs"), "logs")
        _assert_forbidden(await second.post(f"/api/v1/executions/{execution_id}/cancel"), "cancel")
        _assert_forbidden(await second.post(f"/api/v1/executions/{execution_id}/rerun"), "rerun")
        _assert_forbidden(await second.get(f"/api/v1/inquiries/{inquiry_id}"), "read inquiry")
        _assert_forbidden(
            await second.post(f"/api/v1/inquiries/{inquiry_id}/respond", json={"response": "yes"}), "respond"
        )
        _assert_forbidden(await second.delete(f"/api/v1/inquiries/{inquiry_id}"), "delete inquiry")
        _assert_forbidden(await second.get("/api/v1/executions/stats"), "stats of everyone")
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
    await _add(platform, execution)
    child = models.Execution(
        action=demo["action"],
        action_ref="demo.notify",
        status="running",
        parent=execution.id,
        executor=user.id,
    )
    await _add(platform, child)
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
                _assert_forbidden(await worker_side.get(f"/api/v1/keys/{ref}"), ref)
            listed = {item["ref"] for item in (await worker_side.get("/api/v1/keys")).json()["data"]}
            assert listed == {"sys.k", "demo.k", "demo.notify.k"}
            answer = await worker_side.post(
                f"/api/v1/inquiries/{inquiry_id}/respond", json={"response": "yes"}
            )
            _assert_forbidden(answer, "respond to its own (or its parent's) inquiry")
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
    await _add(platform, execution)
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
    _assert_forbidden(await operator.put(f"/api/v1/inquiries/{inquiry['id']}", json=reassign), "reassign")
    assert (await api.put(f"/api/v1/inquiries/{inquiry['id']}", json=reassign)).status_code == 200
    # The answer goes through respond, schema-checked, and the execution completes.
    wrong = await operator.post(f"/api/v1/inquiries/{inquiry['id']}/respond", json={"response": "yes"})
    assert wrong.status_code == 422
    ok = await operator.post(f"/api/v1/inquiries/{inquiry['id']}/respond", json={"response": {"ship": True}})
    assert ok.status_code == 200, ok.text
    assert (await api.get(f"/api/v1/executions/{execution.id}")).json()["data"]["status"] == "completed"


async def test_identities_permission_sets_and_assignments(
    api: httpx.AsyncClient, app: Any, platform: Platform, user: models.Identity
) -> None:
    created = await api.post(
        "/api/v1/identities", json={"login": "vera", "password": "Vera-Passw0rd", "display_name": "Vera"}
    )
    assert created.status_code == 201, created.text
    vera = created.json()["data"]
    assert vera["login"] == "vera" and vera["is_admin"] is False and vera["permission_sets"] == []
    assert "password" not in vera and "password_hash" not in vera
    duplicate = await api.post("/api/v1/identities", json={"login": "vera", "password": "Vera-Passw0rd"})
    assert duplicate.status_code == 409

    assigned = await api.post(
        "/api/v1/permissions/assignments",
        json={"identity_id": vera["id"], "permission_set_ref": "core.viewer"},
    )
    assert assigned.status_code == 201, assigned.text
    assignment = assigned.json()["data"]
    assert set(assignment) == {"id", "identity_id", "permission_set_ref", "created"}
    assert assignment["identity_id"] == vera["id"] and assignment["permission_set_ref"] == "core.viewer"
    again = await api.post(
        "/api/v1/permissions/assignments",
        json={"identity_id": vera["id"], "permission_set_ref": "core.viewer"},
    )
    assert again.status_code == 409
    missing = await api.post(
        "/api/v1/permissions/assignments", json={"identity_id": vera["id"], "permission_set_ref": "no.such"}
    )
    assert missing.status_code == 404

    perms = (await api.get(f"/api/v1/identities/{vera['id']}/permissions")).json()["data"]
    assert perms["permission_sets"] == ["core.viewer"] and perms["is_admin"] is False

    sets = (await api.get("/api/v1/permissions/sets")).json()["data"]
    assert {"core.admin", "core.operator", "core.viewer"} <= {s["ref"] for s in sets}
    builtin = await api.put("/api/v1/permissions/sets/core.viewer", json={"grants": []})
    assert builtin.status_code == 409
    bad = await api.post("/api/v1/permissions/sets", json={"ref": "x.bad", "grants": [{"resource": "nope"}]})
    assert bad.status_code == 400 and "resource" in bad.json()["error"]
    custom = await api.post(
        "/api/v1/permissions/sets",
        json={"ref": "ops.rules", "label": "Rules", "grants": [{"resource": "rules", "actions": ["manage"]}]},
    )
    assert custom.status_code == 201
    assert custom.json()["data"]["grants"] == [
        {"resource": "rules", "actions": ["manage"], "constraints": {}}
    ]
    updated = await api.put("/api/v1/permissions/sets/ops.rules", json={"label": "Rule keepers"})
    assert updated.json()["data"]["label"] == "Rule keepers"

    removed = await api.delete(f"/api/v1/permissions/assignments/{assignment['id']}")
    assert removed.status_code == 204 and removed.content == b""
    assert (await api.delete(f"/api/v1/permissions/assignments/{assignment['id']}")).status_code == 404
    assert (await api.delete("/api/v1/permissions/sets/ops.rules")).status_code == 200

    # A password set by an administrator revokes the identity's earlier tokens.
    holder = await make_identity(platform, "tess", None, "core.viewer")
    async with client_for(app, platform, holder) as before:
        assert (await before.get("/api/v1/packs")).status_code == 200
        reset = await api.put(f"/api/v1/identities/{holder.id}", json={"password": "Tess-Passw0rd-2"})
        assert reset.status_code == 200, reset.text
        assert (await before.get("/api/v1/packs")).status_code == 401

    # The last administrator stays.
    last = await api.put(f"/api/v1/identities/{user.id}", json={"is_admin": False})
    assert last.status_code == 409
    assert (await api.delete(f"/api/v1/identities/{vera['id']}")).status_code == 200
    assert (await api.get(f"/api/v1/identities/{vera['id']}")).status_code == 404


async def test_an_identity_cannot_make_itself_an_administrator(
    app: Any, platform: Platform, clients: Clients
) -> None:
    operator = clients.by_role[OPERATOR]
    promote = await operator.put(f"/api/v1/identities/{clients.ids[OPERATOR]}", json={"is_admin": True})
    _assert_forbidden(promote, "promote itself")
    renamed = await operator.put(
        f"/api/v1/identities/{clients.ids[OPERATOR]}", json={"display_name": "Olga O."}
    )
    assert renamed.status_code == 200 and renamed.json()["data"]["display_name"] == "Olga O."
    grant = {"identity_id": clients.ids[OPERATOR], "permission_set_ref": "core.admin"}
    _assert_forbidden(await operator.post("/api/v1/permissions/assignments", json=grant), "assign itself")


async def test_the_development_user_is_the_first_administrator_and_sets_are_seeded(
    platform: Platform,
) -> None:
    await bootstrap(platform)
    await bootstrap(platform)  # idempotent
    async with platform.db.session() as session:
        identity = await identities.by_login(session, DEFAULT_LOGIN)
        assert identity is not None and identity.is_admin


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
        _assert_forbidden(await client.get("/api/v1/keys/other.state"), "another pack's key")
        assert [k["ref"] for k in (await client.get("/api/v1/keys")).json()["data"]] == ["demo.state"]
        _assert_forbidden(
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
        _assert_forbidden(await client.post("/api/v1/rules", json=theirs), "create in another pack")
        assert (await client.put("/api/v1/rules/demo.mine", json={"label": "M2"})).status_code == 200
        _assert_forbidden(await client.get("/api/v1/rules/other.admins_rule"), "read another pack's rule")
        _assert_forbidden(await client.put("/api/v1/rules/other.admins_rule", json={"label": "x"}), "update")
        _assert_forbidden(await client.delete("/api/v1/rules/other.admins_rule"), "delete")
        assert (await client.delete("/api/v1/rules/demo.mine")).status_code == 200
        run = await client.post(
            "/api/v1/executions/execute", json={"action_ref": "demo.notify", "parameters": {}}
        )
        assert run.status_code == 201, run.text
        _assert_forbidden(
            await client.post("/api/v1/executions/execute", json={"action_ref": "other.x"}), "run"
        )
        # Nothing beyond its grants.
        _assert_forbidden(await client.get("/api/v1/triggers"), "no trigger grant at all")
