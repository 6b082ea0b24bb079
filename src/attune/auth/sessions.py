"""Sessions: login throttling and token revocation (docs/security.md, "Sign-up and sessions")."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Awaitable, Callable

from attune.auth.tokens import Claims
from attune.db.database import Database
from attune.db.repos import executions, identities
from attune.domain.enums import TERMINAL_EXECUTION_STATUSES, ExecutionStatus

#: How long a looked-up ``token_version`` is reused. A password change in this process forgets
#: the entry at once; other API processes see it within this many seconds.
VERSION_CACHE_SECONDS = 5.0
#: Token types a user holds; sensor and execution tokens are bound to their own lifetimes.
SESSION_TOKEN_TYPES = frozenset({"access", "refresh"})
#: Logins and addresses the throttle remembers at most (beyond it, stale entries are dropped).
MAX_TRACKED_KEYS = 100_000
#: Ids are BIGINT: a ``sub`` beyond it cannot name an identity (and must not reach the database).
MAX_ID = 2**63


class LoginThrottle:
    """Counts failed logins per login and per client address in a sliding window.

    In memory, per API process: several API processes each allow the limit (docs/security.md).
    """

    def __init__(self, *, per_login: int, per_address: int, window: float) -> None:
        self.per_login = per_login
        self.per_address = per_address
        self.window = window
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float]:
        stamps = self._failures.get(key)
        if stamps is None:
            return deque()
        while stamps and stamps[0] <= now - self.window:
            stamps.popleft()
        if not stamps:
            del self._failures[key]
        return stamps

    def retry_after(self, login: str, address: str | None, *, now: float | None = None) -> int | None:
        """Seconds until another attempt is allowed, or ``None`` when it is allowed now."""
        now = time.monotonic() if now is None else now
        waits: list[float] = []
        for key, limit in self._keys(login, address):
            stamps = self._recent(key, now)
            if len(stamps) >= limit:
                # The attempt that pushed the count over the limit leaves the window first.
                waits.append(stamps[len(stamps) - limit] + self.window - now)
        if not waits:
            return None
        return max(1, math.ceil(max(waits)))

    def failed(self, login: str, address: str | None, *, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if len(self._failures) >= MAX_TRACKED_KEYS:
            self._sweep(now)
        for key, _limit in self._keys(login, address):
            self._recent(key, now)
            self._failures.setdefault(key, deque()).append(now)

    def _sweep(self, now: float) -> None:
        """Forget keys with no failure left in the window (a spray of logins must not grow memory)."""
        for key in [k for k, stamps in self._failures.items() if stamps[-1] <= now - self.window]:
            del self._failures[key]
        if len(self._failures) >= MAX_TRACKED_KEYS:
            # Still full within one window: keep the newest half rather than grow without bound.
            newest = sorted(self._failures.items(), key=lambda item: item[1][-1])[len(self._failures) // 2 :]
            self._failures = dict(newest)

    def succeeded(self, login: str) -> None:
        """A correct password clears its login's count (the address count stays)."""
        self._failures.pop(self._login_key(login), None)

    def _keys(self, login: str, address: str | None) -> list[tuple[str, int]]:
        keys = [(self._login_key(login), self.per_login)]
        if address:
            keys.append((f"address:{address}", self.per_address))
        return keys

    @staticmethod
    def _login_key(login: str) -> str:
        return f"login:{login.strip().lower()}"


class TokenVersions:
    """``identity.token_version`` by identity id, cached briefly (``None``: no such identity)."""

    def __init__(self, db: Database, ttl: float = VERSION_CACHE_SECONDS) -> None:
        self.db = db
        self.ttl = ttl
        self._cache: dict[int, tuple[int | None, float]] = {}

    async def get(self, identity_id: int) -> int | None:
        now = time.monotonic()
        hit = self._cache.get(identity_id)
        if hit is not None and now - hit[1] < self.ttl:
            return hit[0]
        version = await current_token_version(self.db, identity_id)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[identity_id] = (version, now)
        return version

    def forget(self, identity_id: int) -> None:
        self._cache.pop(identity_id, None)


async def current_token_version(db: Database, identity_id: int) -> int | None:
    async with db.session() as session:
        return await identities.token_version(session, identity_id)


async def claims_problem(
    db: Database, claims: Claims, versions: Callable[[int], Awaitable[int | None]] | None = None
) -> str | None:
    """Why an otherwise valid token must be refused now (``None``: accept it).

    Access and refresh tokens die with their identity and with a password change; execution
    tokens when their execution finishes.
    """
    if claims.token_type in SESSION_TOKEN_TYPES:
        try:
            identity_id = claims.identity_id
        except ValueError:
            return "Invalid authentication token"
        if not 0 < identity_id < MAX_ID:
            return "Invalid authentication token"
        lookup = versions or (lambda ident: current_token_version(db, ident))
        version = await lookup(identity_id)
        if version is None or version != claims.token_version:
            return "Authentication token revoked"
        return None
    if claims.token_type == "execution":
        execution_id = claims.metadata.get("execution_id")
        if not isinstance(execution_id, int):
            return "Invalid authentication token"
        async with db.session() as session:
            status = (await executions.statuses(session, [execution_id])).get(execution_id)
        if status is None or ExecutionStatus(status) in TERMINAL_EXECUTION_STATUSES:
            return "Authentication token expired"
    return None
