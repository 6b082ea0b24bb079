"""Test helpers: identities with given permission sets, and clients acting for them."""

from __future__ import annotations

from typing import Any

import httpx

from attune.db import models
from attune.db.repos import identities, permissions
from attune.platform import Platform


async def make_identity(
    platform: Platform, login: str, password_hash: str | None, *sets: str, is_admin: bool = False
) -> models.Identity:
    """An identity holding the permission sets ``sets`` (the built-in ones are seeded first)."""
    async with platform.db.transaction() as session:
        await permissions.ensure_builtin_sets(session)
        identity = await identities.create(
            session, login, password_hash=password_hash, display_name=login, is_admin=is_admin
        )
        for ref in sets:
            permset = await permissions.get_set(session, ref)
            assert permset is not None, ref
            await permissions.assign(session, identity.id, permset.id)
    return identity


def client_for(app: Any, platform: Platform, identity: models.Identity) -> httpx.AsyncClient:
    """An in-process client carrying an access token of ``identity``."""
    token = platform.tokens.access(identity.id, identity.login)
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://attune.test",
        headers={"Authorization": f"Bearer {token}"},
    )
