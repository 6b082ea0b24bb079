"""First-start provisioning: the default user and the system packs. Idempotent."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.exc import IntegrityError

from attune.auth.passwords import hash_password, verify_password
from attune.db.repos import identities, permissions
from attune.packs.register import register_system_packs
from attune.platform import Platform

log = logging.getLogger(__name__)

DEFAULT_LOGIN = "test@attune.local"
DEFAULT_PASSWORD = "TestPass123!"


async def ensure_default_user(platform: Platform) -> None:
    """Create ``test@attune.local`` unless it exists (never in production)."""
    if platform.settings.is_production:
        return
    async with platform.db.session() as session:
        if await identities.by_login(session, DEFAULT_LOGIN) is not None:
            return
    password_hash = await asyncio.to_thread(hash_password, platform.hasher, DEFAULT_PASSWORD)
    try:
        async with platform.db.transaction() as session:
            await identities.create(
                session,
                DEFAULT_LOGIN,
                password_hash=password_hash,
                display_name="Test User",
                attributes={"email": DEFAULT_LOGIN, "created_via": "bootstrap", "is_test_user": True},
                is_admin=True,
            )
    except IntegrityError:
        log.debug("default user created concurrently by another process")


async def default_login_hint(platform: Platform) -> str | None:
    """What to tell a developer about the default user once the server is ready (docs/operations.md).

    The password is shown only while it still is the default one; nothing is said in production
    or when the default user does not exist.
    """
    if platform.settings.is_production:
        return None
    async with platform.db.session() as session:
        identity = await identities.by_login(session, DEFAULT_LOGIN)
    if identity is None:
        return None
    unchanged = await asyncio.to_thread(
        verify_password, platform.hasher, identity.password_hash, DEFAULT_PASSWORD
    )
    if unchanged:
        return f"development login: {DEFAULT_LOGIN} / {DEFAULT_PASSWORD}"
    return f"development login: {DEFAULT_LOGIN} (its password was changed from the default)"


async def ensure_permission_sets(platform: Platform) -> None:
    """Seed the built-in permission sets ``core.admin/operator/viewer`` (idempotent)."""
    try:
        async with platform.db.transaction() as session:
            await permissions.ensure_builtin_sets(session)
    except IntegrityError:
        log.debug("built-in permission sets seeded concurrently by another process")


async def bootstrap(platform: Platform) -> None:
    await ensure_permission_sets(platform)
    await ensure_default_user(platform)
    await register_system_packs(platform)
