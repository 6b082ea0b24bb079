"""Ids out of range answer 404 before any route runs (docs/security.md "Input limits").

Every id is a 64-bit signed integer in the database; a larger path id cannot name anything, so it
gets the standard 404 body instead of reaching the driver (which refuses to bind it). The check
uses the router's own matching and each route's declared path parameter types, so no route has to
repeat it. Ids out of range elsewhere (query, body) are answered 422 by the error handlers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["MAX_ID", "IdRangeGuard", "in_id_range"]

MAX_ID = 2**63 - 1
MIN_ID = -(2**63)


def in_id_range(value: int) -> bool:
    """Whether ``value`` fits the database's 64-bit integer columns."""
    return MIN_ID <= value <= MAX_ID


def _int_params(route: APIRoute) -> frozenset[str]:
    return frozenset(
        field.name
        for field in route.dependant.path_params
        if getattr(field.field_info, "annotation", None) is int
    )


class IdRangeGuard:
    """Pure ASGI middleware: a request whose integer path parameter is out of range gets 404."""

    def __init__(self, app: ASGIApp, *, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        # Every route, in the router's order, so the one chosen here is the one the router picks.
        self._routes = [(route, _int_params(route)) for route in routes if isinstance(route, APIRoute)]
        self._any = any(names for _, names in self._routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self._any:
            bad = self._out_of_range(scope)
            if bad is not None:
                body = json.dumps({"error": f"No such {bad}: id out of range", "code": "NOT_FOUND"}).encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": 404,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)

    def _out_of_range(self, scope: Scope) -> str | None:
        """The name of the out-of-range parameter of the route the router would choose, if any."""
        partial: tuple[dict[str, object], frozenset[str]] | None = None
        for route, names in self._routes:
            match, child = route.matches(scope)
            if match == Match.FULL:
                return _first_bad(child.get("path_params", {}), names)
            if match == Match.PARTIAL and partial is None:
                partial = (child.get("path_params", {}), names)
        return _first_bad(*partial) if partial is not None else None


def _first_bad(params: dict[str, object], names: frozenset[str]) -> str | None:
    for name in sorted(names):
        raw = params.get(name)
        text = str(raw).strip() if raw is not None else ""
        digits = text[1:] if text[:1] in "+-" else text
        # Only decimal text can overflow; anything else is left to the route's validation (400).
        # Python refuses to convert more than 4300 digits; such a number is out of range anyway.
        if not digits.isdigit():
            continue
        significant = digits.lstrip("0") or "0"
        if len(significant) > 19 or not in_id_range(
            int(text[:1] + significant if text[:1] == "-" else significant)
        ):
            return name
    return None
