"""Grants, permission sets and the built-in sets (docs/security.md "Permission sets").

A grant is ``{"resource": R | "*", "actions": [...], "constraints": {"packs"?: [...], "owner"?: "self"}}``.
``manage`` implies every other action on its resource. Constraints narrow a grant to the objects
of some packs and/or to the objects the identity owns; a grant without constraints covers every
object of its resource. An identity's rights are the union of its grants.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

#: Every resource a grant may name (``*`` names them all).
RESOURCES: tuple[str, ...] = (
    "packs",
    "actions",
    "triggers",
    "sensors",
    "rules",
    "executions",
    "events",
    "enforcements",
    "inquiries",
    "keys",
    "workflows",
    "identities",
    "permission_sets",
    "analytics",
    "runtimes",
    "workers",
    "policies",
    "webhooks",
    "notifications",
    "history",
)

ACTIONS: tuple[str, ...] = ("read", "create", "update", "delete", "execute", "respond", "manage")

#: What a viewer and an operator may read (keys are granted separately: owner only).
_READABLE = tuple(r for r in RESOURCES if r not in ("keys", "identities", "permission_sets"))

ADMIN_SET = "core.admin"
OPERATOR_SET = "core.operator"
VIEWER_SET = "core.viewer"


class GrantError(ValueError):
    """A grant that does not follow the grant shape."""


@dataclass(frozen=True, slots=True)
class Grant:
    """One parsed grant. ``packs`` None: any pack; ``owner_self``: only what the identity owns."""

    resource: str
    actions: frozenset[str]
    packs: frozenset[str] | None = None
    owner_self: bool = False

    @property
    def unconstrained(self) -> bool:
        return self.packs is None and not self.owner_self

    def covers(self, resource: str, action: str) -> bool:
        """Whether this grant names ``action`` on ``resource`` (constraints aside)."""
        if self.resource not in ("*", resource):
            return False
        return "manage" in self.actions or action in self.actions

    def admits(self, *, pack: str | None, owner: int | None, identity_id: int | None) -> bool:
        """Whether the constraints hold for an object of ``pack`` owned by ``owner``."""
        if self.packs is not None and (pack is None or pack not in self.packs):
            return False
        return not self.owner_self or (owner is not None and owner == identity_id)

    def as_dict(self) -> dict[str, Any]:
        constraints: dict[str, Any] = {}
        if self.packs is not None:
            constraints["packs"] = sorted(self.packs)
        if self.owner_self:
            constraints["owner"] = "self"
        ordered = [action for action in ACTIONS if action in self.actions]
        return {"resource": self.resource, "actions": ordered, "constraints": constraints}


def parse_grant(raw: Any) -> Grant:
    """A :class:`Grant` from its JSON shape; :class:`GrantError` says what is wrong."""
    if not isinstance(raw, Mapping):
        raise GrantError("a grant is an object {resource, actions, constraints}")
    resource = raw.get("resource")
    if resource != "*" and resource not in RESOURCES:
        raise GrantError(f"unknown resource {resource!r} (one of *, {', '.join(RESOURCES)})")
    actions = raw.get("actions")
    if not isinstance(actions, list) or not actions or not all(isinstance(a, str) for a in actions):
        raise GrantError("actions must be a non-empty list of strings")
    unknown = [a for a in actions if a not in ACTIONS]
    if unknown:
        raise GrantError(f"unknown action {unknown[0]!r} (one of {', '.join(ACTIONS)})")
    constraints = raw.get("constraints") or {}
    if not isinstance(constraints, Mapping):
        raise GrantError("constraints must be an object")
    extra = set(constraints) - {"packs", "owner"}
    if extra:
        raise GrantError(f"unknown constraint {sorted(extra)[0]!r} (packs, owner)")
    packs = constraints.get("packs")
    if packs is not None and (not isinstance(packs, list) or not all(isinstance(p, str) for p in packs)):
        raise GrantError("constraints.packs must be a list of pack refs")
    owner = constraints.get("owner")
    if owner not in (None, "self"):
        raise GrantError('constraints.owner may only be "self"')
    return Grant(
        resource=str(resource),
        actions=frozenset(actions),
        packs=frozenset(packs) if packs is not None else None,
        owner_self=owner == "self",
    )


def parse_grants(raw: Iterable[Any]) -> list[Grant]:
    return [parse_grant(item) for item in raw]


def _grant(resource: str, *actions: str, owner_self: bool = False) -> dict[str, Any]:
    return {
        "resource": resource,
        "actions": list(actions),
        "constraints": {"owner": "self"} if owner_self else {},
    }


#: The built-in sets, seeded idempotently at start (``ensure_builtin_sets``).
BUILTIN_SETS: dict[str, dict[str, Any]] = {
    ADMIN_SET: {
        "label": "Administrator",
        "description": "Everything, including identities and permission sets.",
        "grants": [_grant("*", "manage")],
    },
    OPERATOR_SET: {
        "label": "Operator",
        "description": (
            "Read everything but identities and other identities' keys; run actions; cancel, pause, "
            "resume and re-run executions; respond to inquiries; create, update and delete rules, "
            "triggers, sensors, workflows and actions; manage its own keys."
        ),
        "grants": [
            *(_grant(resource, "read") for resource in _READABLE),
            _grant("actions", "create", "update", "delete", "execute"),
            # ``execute`` on executions is what the web UI asks before offering re-run and cancel.
            _grant("executions", "create", "update", "execute"),
            _grant("inquiries", "respond"),
            _grant("rules", "create", "update", "delete"),
            _grant("triggers", "create", "update", "delete"),
            _grant("sensors", "create", "update", "delete"),
            _grant("workflows", "create", "update", "delete"),
            _grant("webhooks", "update"),
            _grant("keys", "manage", owner_self=True),
        ],
    },
    VIEWER_SET: {
        "label": "Viewer",
        "description": "Read only; no key values but its own.",
        "grants": [
            *(_grant(resource, "read") for resource in _READABLE),
            _grant("keys", "read", owner_self=True),
        ],
    },
}

#: What a sensor token may do: read automation and post events (its pack's keys: see authz).
SENSOR_GRANTS: tuple[dict[str, Any], ...] = (
    _grant("packs", "read"),
    _grant("triggers", "read"),
    _grant("sensors", "read"),
    _grant("rules", "read"),
    _grant("events", "read", "create"),
)
