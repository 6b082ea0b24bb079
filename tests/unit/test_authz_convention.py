"""Every protected route declares ``require(resource, action)`` (docs/security.md "Permission sets")."""

from __future__ import annotations

from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from attune.api.app import PUBLIC_PATHS
from attune.api.authz import marked
from attune.api.routes import ROUTERS
from attune.domain.permissions import ACTIONS, RESOURCES


def _requirements(dependant: Dependant) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for sub in dependant.dependencies:
        mark = marked(sub.call)
        if mark is not None:
            found.append(mark)
        found.extend(_requirements(sub))
    return found


def _routes() -> list[APIRoute]:
    return [route for router in ROUTERS for route in router.routes if isinstance(route, APIRoute)]


def test_every_non_public_route_requires_a_permission() -> None:
    missing: list[str] = []
    for route in _routes():
        if route.path in PUBLIC_PATHS or not route.path.startswith(("/api/", "/auth/")):
            continue
        if route.path.startswith("/auth/"):
            continue  # authentication itself: an identity's own tokens and password
        if not _requirements(route.dependant):
            missing.append(f"{sorted(route.methods)} {route.path}")
    assert missing == []


def test_requirements_name_known_resources_and_actions() -> None:
    seen: set[tuple[str, str]] = set()
    for route in _routes():
        for resource, action in _requirements(route.dependant):
            assert resource in RESOURCES, (route.path, resource)
            assert action in ACTIONS, (route.path, action)
            seen.add((resource, action))
    # Every route family is covered, the new identity and permission routes included.
    covered: set[Any] = {resource for resource, _ in seen}
    assert {"identities", "permission_sets", "keys", "executions", "inquiries", "packs"} <= covered
