"""What the server refuses at start-up (docs/security.md, "What production refuses").

* ``environment: production``: default or missing secrets, open registration and a development
  user that still has its published password, each with the setting to change.
* Any environment: listening beyond loopback while the development user has its published
  password (anyone on the network could log in as it).
"""

from __future__ import annotations

import asyncio
import ipaddress

from attune import bootstrap
from attune.auth.passwords import verify_password
from attune.db.repos import identities
from attune.errors import ConfigError
from attune.platform import Platform
from attune.settings import production_refusals

CHANGE_DEFAULT_PASSWORD = (
    f"change it (`attune auth login -u {bootstrap.DEFAULT_LOGIN}` then `attune auth change-password`, "
    "or POST /auth/change-password) or delete that identity"
)


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


async def development_user_has_default_password(platform: Platform) -> bool:
    async with platform.db.session() as session:
        identity = await identities.by_login(session, bootstrap.DEFAULT_LOGIN)
    if identity is None or not identity.password_hash:
        return False
    return await asyncio.to_thread(
        verify_password, platform.hasher, identity.password_hash, bootstrap.DEFAULT_PASSWORD
    )


async def check_startup(platform: Platform, *, serves_http: bool) -> None:
    """Raise :class:`ConfigError` (exit code 2) naming what to set when start-up must be refused."""
    settings = platform.settings
    if settings.is_production:
        problems = production_refusals(settings)
        if await development_user_has_default_password(platform):
            problems.append(
                f"the development user {bootstrap.DEFAULT_LOGIN} still has its published default "
                f"password: {CHANGE_DEFAULT_PASSWORD}"
            )
        if problems:
            raise ConfigError("Refusing to start in production: " + "; ".join(problems))
        return
    host = settings.server.host
    if serves_http and not is_loopback(host) and await development_user_has_default_password(platform):
        raise ConfigError(
            f"Refusing to listen on {host}: the development user {bootstrap.DEFAULT_LOGIN} still has its "
            f"published password {bootstrap.DEFAULT_PASSWORD!r}, so anyone on the network could log in. "
            "Start on 127.0.0.1 (the default; `attune server --host 127.0.0.1`) and "
            f"{CHANGE_DEFAULT_PASSWORD}, then listen where you want"
        )
