"""The RBAC tests' identities (docs/security.md): the fixture administrator and identities made with the
built-in sets ``core.operator`` and ``core.viewer`` or no set at all, one client each, over packs
``demo`` and ``other``. tests/integration/conftest.py offers the fixtures ``demo`` and ``clients``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from attune.db import models
from attune.platform import Platform
from tests.identities import client_for, make_identity

ADMIN, OPERATOR, VIEWER, NOBODY = "admin", "operator", "viewer", "nobody"
ROLES = (ADMIN, OPERATOR, VIEWER, NOBODY)
READERS = frozenset({ADMIN, OPERATOR, VIEWER})
RUNNERS = frozenset({ADMIN, OPERATOR})
ADMINS = frozenset({ADMIN})


async def add_rows(platform: Platform, *rows: Any) -> None:
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


def assert_forbidden(response: httpx.Response, label: str) -> None:
    assert response.status_code == 403, f"{label}: {response.status_code} {response.text}"
    body = response.json()
    assert body["code"] == "FORBIDDEN" and isinstance(body["error"], str) and body["error"], label
