"""The caller of a request or a notification feed and its rights (docs/security.md "Permission sets").

A :class:`Principal` is built from a validated token: an access token acts for its identity (the
union of the grants of its permission sets, or everything for an admin), an execution token with
the rights of the identity that started the execution and tied to that execution, a sensor token
with the sensor grants and its pack's keys. The HTTP side (route dependencies) is
:mod:`attune.api.authz`; the notifier asks :func:`notification_access` directly.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from attune.auth.sessions import VERSION_CACHE_SECONDS
from attune.auth.tokens import Claims
from attune.db.database import Database
from attune.db.repos import executions, identities, permissions
from attune.db.repos.permissions import RowScope
from attune.domain.permissions import (
    BUILTIN_SETS,
    OPERATOR_SET,
    SENSOR_GRANTS,
    Grant,
    GrantError,
    parse_grant,
)
from attune.errors import Forbidden, Unauthorized


@dataclass(frozen=True)
class ExecutionScope:
    """What an execution token is tied to: its execution and the action it runs."""

    execution_id: int
    action_ref: str
    action_id: int | None
    pack_id: int | None


@dataclass
class Principal:
    """The caller of one request and its rights."""

    identity_id: int | None
    login: str
    is_admin: bool = False
    grants: tuple[Grant, ...] = ()
    permission_sets: tuple[str, ...] = ()
    token_type: str = "access"
    execution: ExecutionScope | None = None
    _extra: dict[str, Any] = field(default_factory=dict)

    def may(self, resource: str, action: str) -> bool:
        """Whether some grant names ``action`` on ``resource`` (for at least some objects)."""
        return self.is_admin or any(grant.covers(resource, action) for grant in self.grants)

    def may_on(
        self, resource: str, action: str, *, pack: str | None = None, owner: int | None = None
    ) -> bool:
        """Whether ``action`` is allowed on one object of ``pack`` owned by ``owner``."""
        if self.is_admin:
            return True
        return any(
            grant.covers(resource, action)
            and grant.admits(pack=pack, owner=owner, identity_id=self.identity_id)
            for grant in self.grants
        )

    def may_unconstrained(self, resource: str, action: str) -> bool:
        """Whether ``action`` is allowed on every object of ``resource``."""
        return self.is_admin or any(
            grant.covers(resource, action) and grant.unconstrained for grant in self.grants
        )

    def check(
        self,
        resource: str,
        action: str,
        *,
        pack: str | None = None,
        owner: int | None = None,
        what: str | None = None,
    ) -> None:
        """Raise 403 unless ``action`` is allowed on the object (``what`` names it)."""
        if not self.may_on(resource, action, pack=pack, owner=owner):
            raise Forbidden(refusal(action, resource, what))

    def scope(self, resource: str, action: str = "read") -> RowScope:
        """The rows of ``resource`` this caller may see (for list queries)."""
        if self.may_unconstrained(resource, action):
            return RowScope(unrestricted=True, identity_id=self.identity_id)
        clauses = [(grant.packs, grant.owner_self) for grant in self.grants if grant.covers(resource, action)]
        return RowScope(clauses=tuple(clauses), identity_id=self.identity_id)

    def as_grants(self) -> list[dict[str, Any]]:
        return [grant.as_dict() for grant in self.grants]


def refusal(action: str, resource: str, what: str | None = None) -> str:
    """The 403 message: what was refused."""
    target = what or resource.replace("_", " ")
    return f"You may not {action} {target}"


def pack_of(ref: str | None) -> str | None:
    """The pack part of ``<pack>.<name>``."""
    if not ref or "." not in ref:
        return None
    return ref.split(".", 1)[0]


def _parse(raw_grants: list[Any]) -> list[Grant]:
    parsed: list[Grant] = []
    for raw in raw_grants:
        try:
            parsed.append(parse_grant(raw))
        except GrantError:
            continue  # a malformed stored grant grants nothing
    return parsed


async def load_principal(db: Database, claims: Claims) -> Principal:
    """Build the principal of a validated token (one or two small queries)."""
    if claims.token_type == "sensor":
        pack = pack_of(claims.login)
        grants = _parse(list(SENSOR_GRANTS))
        if pack is not None:
            # A sensor keeps state in its pack's keys (the st2 datastore of its sensor service).
            actions = frozenset({"read", "create", "update", "delete"})
            grants.append(Grant("keys", actions, packs=frozenset({pack})))
        return Principal(
            identity_id=claims.identity_id, login=claims.login, grants=tuple(grants), token_type="sensor"
        )
    if claims.token_type == "execution":
        return await _execution_principal(db, claims)
    async with db.session() as session:
        principal = await identity_principal(session, claims.identity_id)
    if principal is None:
        raise Unauthorized("Invalid authentication token")
    return principal


#: Access-token principals a :class:`PrincipalCache` keeps at most.
PRINCIPAL_CACHE_SIZE = 10_000


@dataclass(frozen=True)
class _Cached:
    principal: Principal
    generation: int
    at: float


class PrincipalCache:
    """Access-token principals by ``(identity, token_version)``, so a request does not read the
    caller's identity and grants again (docs/performance.md "Lighter per-run CPU").

    Per API process, like the token versions (docs/security.md): a change of grants made through
    this process (:meth:`changed`, called by the routes that change sets, assignments or
    ``is_admin``) takes effect on the next request; one made by another process within ``ttl``
    seconds. A password change bumps ``token_version``, so its tokens miss the cache.
    """

    def __init__(self, ttl: float = VERSION_CACHE_SECONDS, size: int = PRINCIPAL_CACHE_SIZE) -> None:
        self.ttl = ttl
        self.size = size
        self.generation = 0
        self._entries: dict[tuple[int, int], _Cached] = {}

    def changed(self) -> None:
        """Grants or ``is_admin`` changed: forget every principal (and any being loaded now)."""
        self.generation += 1
        self._entries.clear()

    async def load(self, db: Database, claims: Claims) -> Principal:
        """The principal of a validated token: from the cache for an access token, else loaded."""
        if claims.token_type != "access":
            return await load_principal(db, claims)
        try:
            key = (claims.identity_id, claims.token_version)
        except ValueError:
            return await load_principal(db, claims)
        now = time.monotonic()
        hit = self._entries.get(key)
        if hit is not None and hit.generation == self.generation and now - hit.at < self.ttl:
            return dataclasses.replace(hit.principal, _extra={})
        generation = self.generation
        principal = await load_principal(db, claims)
        if generation == self.generation:  # no change committed while it was read
            if len(self._entries) >= self.size:
                self._entries.clear()
            self._entries[key] = _Cached(dataclasses.replace(principal, _extra={}), generation, now)
        return principal


async def identity_principal(session: Any, identity_id: int) -> Principal | None:
    identity = await identities.get(session, identity_id)
    if identity is None:
        return None
    sets = await permissions.sets_of(session, identity_id)
    grants: list[Grant] = []
    for row in sets:
        grants.extend(_parse(list(row.grants or [])))
    refs = tuple(row.ref for row in sets)
    is_admin = bool(identity.is_admin) or any(
        grant.resource == "*" and "manage" in grant.actions and grant.unconstrained for grant in grants
    )
    return Principal(
        identity_id=identity.id,
        login=identity.login,
        is_admin=is_admin,
        grants=tuple(grants),
        permission_sets=refs,
    )


async def _execution_principal(db: Database, claims: Claims) -> Principal:
    execution_id = claims.metadata.get("execution_id")
    if not isinstance(execution_id, int):
        raise Unauthorized("Invalid authentication token")
    async with db.session() as session:
        execution = await executions.get(session, execution_id)
        if execution is None:
            raise Unauthorized("Invalid authentication token")
        named = claims.metadata.get("action_ref")
        if named is not None and named != execution.action_ref:
            raise Unauthorized("Invalid authentication token")
        action = await executions.action_of(session, execution)
        base = (
            await identity_principal(session, execution.executor) if execution.executor is not None else None
        )
    if base is None:
        base = Principal(
            identity_id=None,
            login=claims.login,
            grants=tuple(_parse(BUILTIN_SETS[OPERATOR_SET]["grants"])),
            permission_sets=(OPERATOR_SET,),
        )
    base.token_type = "execution"
    base.execution = ExecutionScope(
        execution_id=execution_id,
        action_ref=execution.action_ref,
        action_id=action.id if action is not None else None,
        pack_id=action.pack if action is not None else None,
    )
    return base


def check_execution(principal: Principal, execution: Any, action: str) -> None:
    """403 unless ``principal`` may ``action`` this execution (its action's pack, its executor)."""
    principal.check(
        "executions",
        action,
        pack=pack_of(execution.action_ref),
        owner=execution.executor,
        what=f"{action} execution {execution.id}",
    )


#: The resource a notification's ``entity_type`` belongs to (anything else: ``notifications``).
NOTIFICATION_RESOURCES = {
    "execution": "executions",
    "inquiry": "inquiries",
    "event": "events",
    "enforcement": "enforcements",
    "worker": "workers",
}


def notification_access(principal: Principal) -> Callable[[Any], bool] | None:
    """What a notification subscriber may receive, or None when it may receive nothing.

    Notifications carry no owner, so a grant limited to what the caller owns does not reveal
    them; a pack-limited grant on executions passes the executions of its packs.
    """
    if not principal.may("notifications", "read"):
        return None
    if principal.is_admin:
        return lambda _notification: True

    def accept(notification: Any) -> bool:
        resource = NOTIFICATION_RESOURCES.get(notification.entity_type, "notifications")
        if principal.may_unconstrained(resource, "read"):
            return True
        if resource != "executions":
            return False
        payload = notification.data.get("payload")
        ref = payload.get("action_ref") if isinstance(payload, dict) else None
        return any(
            grant.covers(resource, "read")
            and not grant.owner_self
            and grant.packs is not None
            and pack_of(ref) in grant.packs
            for grant in principal.grants
        )

    return accept
