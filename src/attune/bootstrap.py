"""First-start provisioning: the default user and the system packs. Idempotent."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.exc import IntegrityError

from attune.auth.passwords import hash_password
from attune.db.repos import identities
from attune.packs.register import register_system_packs
from attune.runtime import Runtime

log = logging.getLogger(__name__)

DEFAULT_LOGIN = "test@attune.local"
DEFAULT_PASSWORD = "TestPass123!"


async def ensure_default_user(runtime: Runtime) -> None:
    """Create ``test@attune.local`` unless it exists (never in production)."""
    if runtime.settings.is_production:
        return
    async with runtime.db.session() as session:
        if await identities.by_login(session, DEFAULT_LOGIN) is not None:
            return
    password_hash = await asyncio.to_thread(hash_password, runtime.hasher, DEFAULT_PASSWORD)
    try:
        async with runtime.db.transaction() as session:
            await identities.create(
                session,
                DEFAULT_LOGIN,
                password_hash=password_hash,
                display_name="Test User",
                attributes={"email": DEFAULT_LOGIN, "created_via": "bootstrap", "is_test_user": True},
            )
    except IntegrityError:
        log.debug("default user created concurrently by another process")


async def bootstrap(runtime: Runtime) -> None:
    await ensure_default_user(runtime)
    await register_system_packs(runtime)
