"""The API keeps each access token's grants between requests (docs/performance.md "Lighter per-run
CPU") without ever serving a revoked right: a change of permission sets, assignments or
``is_admin`` made through the API takes effect on the caller's next request."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from attune.auth import principals
from attune.db import models
from attune.platform import Platform
from tests.identities import client_for, make_identity


def count_loads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    loads = [0]
    real = principals.identity_principal

    async def counted(session: Any, identity_id: int) -> principals.Principal | None:
        loads[0] += 1
        return await real(session, identity_id)

    monkeypatch.setattr(principals, "identity_principal", counted)
    return loads


async def test_a_callers_grants_are_read_once_for_many_requests(
    app: Any, platform: Platform, password_hash: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    viewer = await make_identity(platform, "vic", password_hash, "core.viewer")
    loads = count_loads(monkeypatch)
    async with client_for(app, platform, viewer) as vic:
        for _ in range(3):
            assert (await vic.get("/api/v1/packs")).status_code == 200
    assert loads[0] == 1


async def test_a_revoked_assignment_takes_effect_on_the_next_request(
    app: Any, platform: Platform, api: httpx.AsyncClient, password_hash: str
) -> None:
    viewer = await make_identity(platform, "val", password_hash, "core.viewer")
    async with client_for(app, platform, viewer) as val:
        assert (await val.get("/api/v1/packs")).status_code == 200
        [assignment] = (await api.get(f"/api/v1/permissions/assignments?identity_id={viewer.id}")).json()[
            "data"
        ]
        assert (await api.delete(f"/api/v1/permissions/assignments/{assignment['id']}")).status_code == 204
        assert (await val.get("/api/v1/packs")).status_code == 403
        granted = await api.post(
            "/api/v1/permissions/assignments",
            json={"identity_id": viewer.id, "permission_set_ref": "core.viewer"},
        )
        assert granted.status_code == 201
        assert (await val.get("/api/v1/packs")).status_code == 200


async def test_a_grant_removed_from_a_set_takes_effect_on_the_next_request(
    app: Any, platform: Platform, api: httpx.AsyncClient, password_hash: str
) -> None:
    made = await api.post(
        "/api/v1/permissions/sets",
        json={
            "ref": "ops.readers",
            "label": "Readers",
            "grants": [{"resource": "packs", "actions": ["read"]}],
        },
    )
    assert made.status_code == 201, made.text
    reader = await make_identity(platform, "rita", password_hash, "ops.readers")
    async with client_for(app, platform, reader) as rita:
        assert (await rita.get("/api/v1/packs")).status_code == 200
        emptied = await api.put("/api/v1/permissions/sets/ops.readers", json={"grants": []})
        assert emptied.status_code == 200
        assert (await rita.get("/api/v1/packs")).status_code == 403


async def test_an_administrator_demoted_loses_its_rights_on_the_next_request(
    app: Any, platform: Platform, api: httpx.AsyncClient, password_hash: str, user: models.Identity
) -> None:
    boss = await make_identity(platform, "bea", password_hash, is_admin=True)
    async with client_for(app, platform, boss) as bea:
        assert (await bea.get("/api/v1/identities")).status_code == 200
        demoted = await api.put(f"/api/v1/identities/{boss.id}", json={"is_admin": False})
        assert demoted.status_code == 200, demoted.text
        assert (await bea.get("/api/v1/identities")).status_code == 403
