"""JWT issue and validation (docs/security.md): HS256, 60 s leeway, access/refresh/sensor/execution."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import jwt

LEEWAY_SECONDS = 60


class TokenError(Exception):
    """A token could not be accepted; ``message`` is the client-facing reason."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Claims:
    sub: str
    login: str
    token_type: str
    iat: int
    exp: int
    scope: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    #: The identity's ``token_version`` when the token was issued; a password change bumps the
    #: identity's counter, which revokes every token carrying an older one (docs/security.md).
    token_version: int = 0

    @property
    def identity_id(self) -> int:
        return int(self.sub)


class TokenService:
    """Signs and checks tokens with one secret; lifetimes come from settings."""

    def __init__(self, secret: str, *, access_ttl: int = 3600, refresh_ttl: int = 604800) -> None:
        self._secret = secret
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl

    def issue(
        self,
        identity_id: int,
        login: str,
        token_type: str,
        ttl: int,
        *,
        scope: str | None = None,
        metadata: dict[str, Any] | None = None,
        version: int = 0,
    ) -> tuple[str, int]:
        """Return ``(jwt, exp)``."""
        now = int(time.time())
        exp = now + ttl
        claims: dict[str, Any] = {
            "sub": str(identity_id),
            "login": login,
            "iat": now,
            "exp": exp,
            "token_type": token_type,
            "tv": version,
        }
        if scope is not None:
            claims["scope"] = scope
        if metadata is not None:
            claims["metadata"] = metadata
        return jwt.encode(claims, self._secret, algorithm="HS256"), exp

    def access(self, identity_id: int, login: str, version: int = 0) -> str:
        return self.issue(identity_id, login, "access", self.access_ttl, version=version)[0]

    def refresh(self, identity_id: int, login: str, version: int = 0) -> str:
        return self.issue(identity_id, login, "refresh", self.refresh_ttl, version=version)[0]

    def decode(self, token: str) -> Claims:
        """Validate signature and expiry; raise :class:`TokenError` with the docs/api.md message."""
        try:
            data = jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],
                leeway=LEEWAY_SECONDS,
                options={"require": ["sub", "exp"], "verify_aud": False, "verify_iss": False},
            )
        except jwt.ExpiredSignatureError as exc:
            raise TokenError("Authentication token expired") from exc
        except jwt.PyJWTError as exc:
            raise TokenError("Invalid authentication token") from exc
        try:
            return Claims(
                sub=str(data["sub"]),
                login=str(data.get("login", "")),
                token_type=str(data.get("token_type") or "access"),
                iat=int(data.get("iat", 0)),
                exp=int(data["exp"]),
                scope=data.get("scope"),
                metadata=dict(data.get("metadata") or {}),
                token_version=int(data.get("tv") or 0),
            )
        except (TypeError, ValueError) as exc:
            raise TokenError("Invalid authentication token") from exc
