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
from typing import Annotated, Any

from fastapi import Depends, Request

from attune.api.deps import ClaimsDep, platform_of
from attune.auth.principals import (
    ExecutionScope,
    Principal,
    PrincipalCache,
    check_execution,
    identity_principal,
    load_principal,
    notification_access,
    pack_of,
    refusal,
)
from attune.db.repos import permissions
from attune.errors import Forbidden

#: Attribute marking a dependency made by :func:`require` (read by the convention test).
REQUIRE_MARK = "__attune_require__"


#: The caller of the request being served, for route helpers that judge one object by its pack.
_CURRENT: ContextVar[Principal | None] = ContextVar("attune_principal", default=None)


async def current_principal(request: Request, claims: ClaimsDep) -> Principal:
    """The caller of this request, loaded once per request."""
    cached = getattr(request.state, "principal", None)
    if isinstance(cached, Principal):
        return cached
    cache: PrincipalCache | None = getattr(request.app.state, "principals", None)
    db = platform_of(request).db
    principal = await (cache.load(db, claims) if cache is not None else load_principal(db, claims))
    request.state.principal = principal
    _CURRENT.set(principal)
    return principal


def grants_changed(request: Request) -> None:
    """After a commit that changed permission sets, assignments or ``is_admin``: the next request
    of every caller of this process loads its grants again."""
    cache: PrincipalCache | None = getattr(request.app.state, "principals", None)
    if cache is not None:
        cache.changed()


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


__all__ = [
    "ExecutionScope",
    "Principal",
    "PrincipalDep",
    "check_execution",
    "check_pack",
    "grants_changed",
    "identity_principal",
    "in_readable_packs",
    "load_principal",
    "marked",
    "notification_access",
    "pack_of",
    "refusal",
    "require",
]
