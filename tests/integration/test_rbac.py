"""Permission sets and who may do what (issue #10 items 2-4; docs/security.md): the permission matrix
over every route family, each identity's own permissions and lists, identities and assignments.

``api`` acts for the fixture administrator; the other identities (tests/integration/rbac_support.py)
have the built-in sets ``core.operator`` and ``core.viewer`` or no set at all. test_rbac_ownership
has ownership and scoped tokens.
"""

from __future__ import annotations

from typing import Any

import httpx

from attune.bootstrap import DEFAULT_LOGIN, bootstrap
from attune.db import models
from attune.db.repos import identities
from attune.platform import Platform
from tests.identities import client_for, make_identity
from tests.integration.rbac_support import (
    ADMIN,
    ADMINS,
    NOBODY,
    OPERATOR,
    READERS,
    ROLES,
    RUNNERS,
    VIEWER,
    Clients,
    assert_forbidden,
)

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
                assert_forbidden(response, label)


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
    assert_forbidden(other, "viewer reads the operator's permissions")


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
    assert_forbidden(await clients.by_role[NOBODY].get("/api/v1/keys"), "nobody lists keys")


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
    assert_forbidden(promote, "promote itself")
    renamed = await operator.put(
        f"/api/v1/identities/{clients.ids[OPERATOR]}", json={"display_name": "Olga O."}
    )
    assert renamed.status_code == 200 and renamed.json()["data"]["display_name"] == "Olga O."
    grant = {"identity_id": clients.ids[OPERATOR], "permission_set_ref": "core.admin"}
    assert_forbidden(await operator.post("/api/v1/permissions/assignments", json=grant), "assign itself")


async def test_the_development_user_is_the_first_administrator_and_sets_are_seeded(
    platform: Platform,
) -> None:
    await bootstrap(platform)
    await bootstrap(platform)  # idempotent
    async with platform.db.session() as session:
        identity = await identities.by_login(session, DEFAULT_LOGIN)
        assert identity is not None and identity.is_admin
