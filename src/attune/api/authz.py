"""Who may do what: the caller's :class:`Principal` and the one route dependency :func:`require`.

docs/security.md "Permission sets". Every protected route declares ``require(resource, action)``
(a convention test checks it). The dependency refuses with 403 ``FORBIDDEN`` when none of the
caller's grants names that action on that resource; routes then check the concrete object
(``Principal.check``) where a grant may be limited to some packs or to what the caller owns, and
lists keep only the rows the caller may read (``Principal.scope`` with ``permissions.restrict``).

Tokens and their principals:

* access tokens act for their identity: ``is_admin`` passes everything, otherwise the union of
  the grants of its permission sets;
* execution tokens (``ATTUNE_API_TOKEN``) act with the rights of the identity that started the
  execution (``core.operator``'s for a run fired by a rule), except that they read only the keys
  the worker hands their action (system keys, its pack's, its own) and cannot respond to the
  inquiries of their own execution or its ancestors;
* sensor tokens read automation, post events and use their pack's keys.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request

from attune.api.deps import ClaimsDep, get_runtime
from attune.auth.tokens import Claims
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
from attune.runtime import Runtime

#: Attribute marking a dependency made by :func:`require` (read by the convention test).
REQUIRE_MARK = "__attune_require__"


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


async def load_principal(runtime: Runtime, claims: Claims) -> Principal:
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
        return await _execution_principal(runtime, claims)
    async with runtime.db.session() as session:
        principal = await identity_principal(session, claims.identity_id)
    if principal is None:
        raise Unauthorized("Invalid authentication token")
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


async def _execution_principal(runtime: Runtime, claims: Claims) -> Principal:
    execution_id = claims.metadata.get("execution_id")
    if not isinstance(execution_id, int):
        raise Unauthorized("Invalid authentication token")
    async with runtime.db.session() as session:
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


#: The caller of the request being served, for route helpers that judge one object by its pack.
_CURRENT: ContextVar[Principal | None] = ContextVar("attune_principal", default=None)


async def current_principal(request: Request, claims: ClaimsDep) -> Principal:
    """The caller of this request, loaded once per request."""
    cached = getattr(request.state, "principal", None)
    if isinstance(cached, Principal):
        return cached
    principal = await load_principal(get_runtime(request), claims)
    request.state.principal = principal
    _CURRENT.set(principal)
    return principal


def _caller() -> Principal:
    principal = _CURRENT.get()
    if principal is None:
        # Only protected routes call the helpers below, after require(): fail closed regardless.
        raise Forbidden("No caller to check permissions for")
    return principal


def check_pack(resource: str, action: str, pack: str | None, what: str | None = None) -> None:
    """403 unless the current caller may ``action`` an object of ``resource`` in ``pack``."""
    _caller().check(resource, action, pack=pack, what=what)


def in_readable_packs(query: Any, resource: str, pack_column: Any) -> Any:
    """A list query of ``resource`` limited to the packs the current caller may read it in."""
    return permissions.restrict(query, _caller().scope(resource), pack=pack_column)


PrincipalDep = Annotated[Principal, Depends(current_principal)]


def require(resource: str, action: str, *, scoped: bool = False, deferred: bool = False) -> Any:
    """The dependency every protected route declares: 403 unless the caller may ``action`` ``resource``.

    By default a grant limited by constraints (some packs, owner only) does not pass: only a route
    that judges each object itself (``Principal.check``, ``Principal.scope``) declares ``scoped``
    and accepts them, so a constraint can never be ignored by a route that does not know about it.
    ``deferred``: the route decides everything on the concrete object (e.g. an identity reading its
    own record with no grant on identities); the dependency only loads the principal.
    """

    async def check(principal: PrincipalDep) -> Principal:
        if deferred:
            return principal
        allowed = principal.may(resource, action) if scoped else principal.may_unconstrained(resource, action)
        if not allowed:
            raise Forbidden(refusal(action, resource))
        return principal

    setattr(check, REQUIRE_MARK, (resource, action))
    check.__name__ = f"require_{resource}_{action}"
    return Depends(check)


def marked(call: Callable[..., Coroutine[Any, Any, Any]] | Any) -> tuple[str, str] | None:
    """The ``(resource, action)`` a :func:`require` dependency checks, if ``call`` is one."""
    mark = getattr(call, REQUIRE_MARK, None)
    return mark if isinstance(mark, tuple) else None


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
