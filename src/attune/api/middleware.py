"""Request guard run before routing: body limit, JSON content type and the bearer check.

It runs before path, query and body parsing, so an unauthenticated bad request gets 401
(docs/security.md), and it only guards paths that some route serves (unknown paths stay 404).
Sensor tokens reach only what a sensor process needs (:func:`sensor_may_call`), nothing else.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from attune.auth.tokens import Claims, TokenError, TokenService

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
#: Token types accepted on protected routes (refresh tokens only at ``/auth/refresh``).
BEARER_TOKEN_TYPES = frozenset({"access", "sensor", "execution"})
#: ``(method, route template)`` a sensor token may call besides :data:`SENSOR_READS`: emit events,
#: use the key store (``require()`` narrows it to the sensor's pack) and say who it is.
SENSOR_ROUTES = frozenset(
    {
        ("POST", "/api/v1/events"),
        ("GET", "/api/v1/keys"),
        ("POST", "/api/v1/keys"),
        ("GET", "/api/v1/keys/{ref}"),
        ("PUT", "/api/v1/keys/{ref}"),
        ("DELETE", "/api/v1/keys/{ref}"),
        ("GET", "/auth/me"),
    }
)
#: Route prefixes a sensor token may read (GET): the automation it serves (its pack's config…).
SENSOR_READS = tuple(f"/api/v1/{name}" for name in ("packs", "triggers", "sensors", "rules", "events"))


def sensor_may_call(method: str, route_path: str) -> bool:
    """Whether a sensor token may reach this route at all (docs/security.md, "Service credentials")."""
    if (method, route_path) in SENSOR_ROUTES:
        return True
    return method in ("GET", "HEAD") and any(
        route_path == prefix or route_path.startswith(prefix + "/") for prefix in SENSOR_READS
    )


class ApiGuard:
    """Pure ASGI middleware (cheaper than BaseHTTPMiddleware on the hot path)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        routes: Sequence[tuple[re.Pattern[str], str]],
        tokens: TokenService,
        is_public: Callable[[str], bool],
        raw_body_paths: Callable[[str], bool],
        max_body: int,
        max_upload: int,
        validate_claims: Callable[[Claims], Awaitable[str | None]] | None = None,
        service_paths: frozenset[str] = frozenset(),
        service_credential: Callable[[dict[str, str]], bool] | None = None,
    ) -> None:
        self.app = app
        self._routes = routes
        self._tokens = tokens
        self._is_public = is_public
        self._raw_body_paths = raw_body_paths
        self._max_body = max_body
        self._max_upload = max_upload
        self._validate_claims = validate_claims
        self._service_paths = service_paths
        self._service_credential = service_credential

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] == "OPTIONS":
            await self.app(scope, receive, send)
            return
        route_path = self._match(scope)
        if route_path is None:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if not self._is_public(route_path):
            problem = await self._authenticate(scope, headers.get("authorization"))
            if problem is not None:
                await _send(
                    send, 401, json.dumps({"error": {"code": 401, "message": problem}}), "application/json"
                )
                return
            claims = scope["state"]["claims"]
            if claims.token_type == "sensor" and not sensor_may_call(scope["method"], route_path):
                refusal = {"error": "A sensor token cannot call this route", "code": "FORBIDDEN"}
                await _send(send, 403, json.dumps(refusal), "application/json")
                return
        if route_path in self._service_paths and (
            self._service_credential is None or not self._service_credential(headers)
        ):
            # Before the body is read: an anonymous caller learns nothing but "401".
            message = {"code": 401, "message": "Service credential required (X-Attune-Service-Token header)"}
            await _send(send, 401, json.dumps({"error": message}), "application/json")
            return
        raw = self._raw_body_paths(route_path)
        limit = self._max_upload if raw else self._max_body
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await _send(
                send, 413, f"Request body exceeds the limit of {limit} bytes", "text/plain; charset=utf-8"
            )
            return
        if scope["method"] in BODY_METHODS and not raw and _has_body(headers):
            ctype = headers.get("content-type", "").split(";")[0].strip().lower()
            if ctype != "application/json" and not ctype.endswith("+json"):
                await _send(
                    send,
                    415,
                    "Expected request with `Content-Type: application/json`",
                    "text/plain; charset=utf-8",
                )
                return
        if length is None and scope["method"] in BODY_METHODS:
            over = _Overflow()
            receive = _limited(receive, limit, over)
            send = _too_large_instead(send, limit, over)
        try:
            await self.app(scope, receive, send)
        except _BodyTooLarge:
            await _send(
                send, 413, f"Request body exceeds the limit of {limit} bytes", "text/plain; charset=utf-8"
            )

    def _match(self, scope: Scope) -> str | None:
        """The route template serving this path, whatever the method (405 stays the router's job)."""
        path = scope["path"]
        for regex, template in self._routes:
            if regex.match(path):
                return template
        return None

    async def _authenticate(self, scope: Scope, header: str | None) -> str | None:
        if not header or not header.startswith("Bearer "):
            return "Missing authentication token"
        try:
            claims = self._tokens.decode(header[len("Bearer ") :].strip())
        except TokenError as exc:
            return exc.message
        if claims.token_type not in BEARER_TOKEN_TYPES:
            return "Invalid authentication token"
        if self._validate_claims is not None:
            problem = await self._validate_claims(claims)
            if problem is not None:
                return problem
        scope.setdefault("state", {})["claims"] = claims
        return None


class _BodyTooLarge(Exception):
    pass


def _has_body(headers: dict[str, str]) -> bool:
    length = headers.get("content-length")
    if length is not None:
        return length.strip() not in ("", "0")
    return "transfer-encoding" in headers


class _Overflow:
    """Whether a chunked body went past the limit (the app may turn the error into a 400)."""

    exceeded = False
    answered = False


def _limited(receive: Receive, limit: int, over: _Overflow) -> Receive:
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                over.exceeded = True
                raise _BodyTooLarge
        return message

    return wrapped


def _too_large_instead(send: Send, limit: int, over: _Overflow) -> Send:
    """Answer 413 whatever the app made of the interrupted body (form parsing reports a 400)."""

    async def wrapped(message: Message) -> None:
        if not over.exceeded:
            await send(message)
        elif message["type"] == "http.response.start" and not over.answered:
            over.answered = True
            await _send(
                send, 413, f"Request body exceeds the limit of {limit} bytes", "text/plain; charset=utf-8"
            )

    return wrapped


async def _send(send: Send, status: int, body: str, content_type: str) -> None:
    payload = body.encode()
    headers: list[tuple[bytes, bytes]] = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(payload)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
