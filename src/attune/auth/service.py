"""Service credentials and sensor tokens (docs/security.md, "Service credentials").

Internal callers prove themselves with ``security.service_token``, presented as the
``X-Attune-Service-Token`` header (or ``Authorization: Bearer <service token>`` on the internal
route). It is never handed to pack code: a sensor process receives only the narrow sensor token
minted for it.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from attune.auth.tokens import TokenService
from attune.db.database import Database
from attune.db.repos import identities
from attune.settings import Settings

SERVICE_TOKEN_HEADER = "x-attune-service-token"
SENSOR_SCOPE = "sensor"


def service_credential_ok(settings: Settings, presented: str | None) -> bool:
    """Whether ``presented`` is the configured service credential (compared in constant time).

    With no credential configured nothing matches: the internal route is closed.
    """
    expected = settings.security.service_token
    if not expected or not presented:
        return False
    return hmac.compare_digest(expected.encode(), presented.encode())


def presented_service_credential(
    settings: Settings, headers: Mapping[str, str], *, bearer_allowed: bool = True
) -> bool:
    """Whether request ``headers`` (lower-case names) carry the service credential.

    ``X-Attune-Service-Token`` wins; else ``Authorization: Bearer <service token>`` when
    ``bearer_allowed`` (a JWT there is a user token, which is never the service credential).
    """
    presented = headers.get(SERVICE_TOKEN_HEADER)
    if presented is None and bearer_allowed:
        header = headers.get("authorization", "")
        if header.startswith("Bearer "):
            presented = header[len("Bearer ") :].strip()
    return service_credential_ok(settings, presented)


def sensor_claims(sensor_ref: str, trigger_types: list[str]) -> dict[str, Any]:
    """The ``metadata`` claim of a sensor token: which sensor, and the only triggers it may fire.

    Authorization (``require()``) reads ``token_type == "sensor"`` and these fields: a sensor token
    may create events for ``trigger_types`` and read what a sensor needs, nothing else.
    """
    return {"sensor_ref": sensor_ref, "trigger_types": list(trigger_types)}


async def mint_sensor_token(
    db: Database, tokens: TokenService, sensor_ref: str, trigger_types: list[str], ttl: int
) -> tuple[int, str, datetime]:
    """``(identity id, token, expiry)`` for the identity ``sensor:<ref>``, found or created."""
    async with db.transaction() as session:
        identity = await identities.sensor_identity(session, sensor_ref, trigger_types)
        identity_id = identity.id
    token, exp = tokens.issue(
        identity_id,
        sensor_ref,
        "sensor",
        ttl,
        scope=SENSOR_SCOPE,
        metadata=sensor_claims(sensor_ref, trigger_types),
    )
    return identity_id, token, datetime.fromtimestamp(exp, UTC)
