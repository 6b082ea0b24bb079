"""The notification WebSocket protocol (docs/notifications.md, with authentication).

1. Authenticate: ``?token=<jwt>`` on the upgrade request (an invalid one is refused with HTTP 403
   before the handshake), or, without a query token, a first message
   ``{"type": "auth", "token": "<jwt>"}`` within :data:`AUTH_TIMEOUT` seconds (anything else, or an
   invalid token, closes the socket with code 4401).
2. The server sends ``{"type": "welcome", "client_id": "client_N", "message": …}``.
3. A client starts with no filters and receives nothing. It sends
   ``{"type": "subscribe", "filter": F}`` / ``{"type": "unsubscribe", "filter": F}``, with ``F`` one
   of ``all``, ``entity_type:<type>``, ``entity:<type>:<id>``, ``user:<id>`` (or ``user_id:<id>``)
   and ``notification_type:<channel>``; each is acknowledged with ``{"type": "subscribed"|
   "unsubscribed", "filter": F}``, a bad message gets ``{"type": "error", "message": …}``.
   ``{"type": "ping"}`` is answered with ``{"type": "pong"}``.
4. Every notification matching any filter is sent as the bare envelope (docs/notifications.md)
   ``{notification_type, entity_type, entity_id, user_id, payload, timestamp}`` (no ``type`` key),
   in the order the hub received them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import State
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from attune.auth.principals import load_principal, notification_access
from attune.auth.sessions import claims_problem
from attune.auth.tokens import Claims, TokenError
from attune.errors import Unauthorized
from attune.notifier.hub import Accept, Notification, NotificationHub, Subscription
from attune.platform import Platform

log = logging.getLogger(__name__)

#: Seconds a client without ``?token=`` has to send its auth message.
AUTH_TIMEOUT = 10.0
#: Close code for a missing or invalid token (4000-4999 are for applications; 401 → 4401).
CLOSE_UNAUTHORIZED = 4401
#: Close code for an identity that may read no notifications (403 → 4403).
CLOSE_FORBIDDEN = 4403
#: Token types the WebSocket accepts (the same as protected API routes).
#: Who may watch notifications: users and running actions. Not refresh tokens (long-lived, and a
#: URL is no place for them) and not sensor tokens, which only fire their triggers (docs/security.md).
WS_TOKEN_TYPES = frozenset({"access", "execution"})


# --------------------------------------------------------------------------- authentication


async def authenticate(platform: Platform, token: str | None, allowed: frozenset[str] | None) -> Claims:
    """The claims of a valid ``token`` of an ``allowed`` type (``None``: any type).

    Raises :class:`Unauthorized` with the API's message otherwise. Execution-scoped tokens are
    valid only while their execution has not finished, user tokens until a password change, as on
    the API's protected routes.
    """
    if not token:
        raise Unauthorized("Missing authentication token")
    try:
        claims = platform.tokens.decode(token)
    except TokenError as exc:
        raise Unauthorized(exc.message) from exc
    if allowed is not None and claims.token_type not in allowed:
        raise Unauthorized("Invalid authentication token")
    # Revoked (password changed, identity deleted) or finished-execution tokens, as on the API.
    problem = await claims_problem(platform.db, claims)
    if problem is not None:
        raise Unauthorized(problem)
    return claims


async def _claims_or_none(platform: Platform, token: str | None) -> Claims | None:
    try:
        return await authenticate(platform, token, WS_TOKEN_TYPES)
    except Unauthorized:
        return None


# --------------------------------------------------------------------------- filters


class FilterError(ValueError):
    """A subscribe/unsubscribe filter that does not parse."""


@dataclass(frozen=True, slots=True)
class Filter:
    """One subscription filter; ``kind`` is all, entity_type, entity, user or notification_type."""

    kind: str
    entity_type: str | None = None
    entity_id: int | None = None
    value: str | None = None

    def matches(self, notification: Notification) -> bool:
        """Whether this filter selects ``notification``."""
        if self.kind == "all":
            return True
        if self.kind == "entity_type":
            return notification.entity_type == self.entity_type
        if self.kind == "entity":
            return notification.entity_type == self.entity_type and notification.entity_id == self.entity_id
        if self.kind == "user":
            return notification.user_id == self.entity_id
        return notification.notification_type == self.value

    def __str__(self) -> str:
        if self.kind == "all":
            return "all"
        if self.kind == "entity_type":
            return f"entity_type:{self.entity_type}"
        if self.kind == "entity":
            return f"entity:{self.entity_type}:{self.entity_id}"
        if self.kind == "user":
            return f"user:{self.entity_id}"
        return f"notification_type:{self.value}"


def _int(text: str) -> int:
    if not text.lstrip("-").isdigit():
        raise FilterError(f"{text!r} is not an integer id")
    return int(text)


def parse_filter(text: object) -> Filter:
    """Parse ``all`` | ``entity_type:T`` | ``entity:T:ID`` | ``user:ID`` | ``notification_type:C``."""
    if not isinstance(text, str) or not text.strip():
        raise FilterError("filter must be a non-empty string")
    text = text.strip()
    if text == "all":
        return Filter("all")
    kind, _, rest = text.partition(":")
    if not rest:
        raise FilterError(f"unknown filter {text!r}")
    if kind == "entity_type":
        return Filter("entity_type", entity_type=rest)
    if kind == "entity":
        entity_type, _, entity_id = rest.rpartition(":")
        if not entity_type:
            raise FilterError("entity filters are entity:<type>:<id>")
        return Filter("entity", entity_type=entity_type, entity_id=_int(entity_id))
    if kind in ("user", "user_id"):
        return Filter("user", entity_id=_int(rest))
    if kind == "notification_type":
        return Filter("notification_type", value=rest)
    raise FilterError(f"unknown filter {text!r}")


# --------------------------------------------------------------------------- the feed


class NotificationFeed:
    """What one application serves notifications from: its hub and its connected clients."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.hub = NotificationHub(platform.bus, stop=platform.stop)
        self._numbers = itertools.count(1)
        self._clients: dict[str, set[Filter]] = {}

    def stats(self) -> dict[str, int]:
        """``{"connected_clients": n, "total_subscriptions": n}`` (docs/notifications.md)."""
        return {
            "connected_clients": len(self._clients),
            "total_subscriptions": sum(len(filters) for filters in self._clients.values()),
        }

    async def subscribe(self, accept: Accept | None = None) -> Subscription:
        """A hub subscription, starting the hub on first use."""
        subscription = self.hub.subscribe(accept)
        try:
            await self.hub.start()
        except BaseException:
            subscription.close()
            raise
        return subscription

    async def serve(self, websocket: WebSocket) -> None:
        """Run the protocol on one WebSocket until either side closes it."""
        token = websocket.query_params.get("token")
        claims: Claims | None = None
        if token is not None:
            claims = await _claims_or_none(self.platform, token)
            if claims is None:
                await websocket.close(code=CLOSE_UNAUTHORIZED)  # before accept: HTTP 403
                return
        if len(self._clients) >= self.platform.settings.notifier.max_connections:
            await websocket.close(code=1013)  # try again later; before accept: HTTP 403
            return
        await websocket.accept()
        if claims is None:
            claims = await self._first_message_auth(websocket)
            if claims is None:
                return
        allowed = await _access(self.platform, claims)
        if allowed is None:
            with contextlib.suppress(Exception):
                await websocket.close(code=CLOSE_FORBIDDEN, reason="not allowed to read notifications")
            return
        client_id = f"client_{next(self._numbers)}"
        filters: set[Filter] = set()
        self._clients[client_id] = filters
        # A subscription selects among what the identity may read (docs/security.md).
        subscription = await self.subscribe(lambda n: allowed(n) and any(f.matches(n) for f in filters))
        try:
            await websocket.send_json(
                {"type": "welcome", "client_id": client_id, "message": "Connected to Attune Notifier"}
            )
            await _pump(websocket, subscription, filters)
        finally:
            subscription.close()
            del self._clients[client_id]
            if websocket.application_state is WebSocketState.CONNECTED:
                with contextlib.suppress(Exception):
                    await websocket.close(code=1001 if self.hub.closed else 1000)

    async def _first_message_auth(self, websocket: WebSocket) -> Claims | None:
        try:
            async with asyncio.timeout(AUTH_TIMEOUT):
                text = await websocket.receive_text()
        except (TimeoutError, WebSocketDisconnect, KeyError, RuntimeError):
            text = ""
        message = _loads(text)
        token = message.get("token") if message and message.get("type") == "auth" else None
        claims = await _claims_or_none(self.platform, token if isinstance(token, str) else None)
        if claims is None and websocket.application_state is WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await websocket.close(code=CLOSE_UNAUTHORIZED, reason="authentication required")
        return claims


async def _access(platform: Platform, claims: Claims) -> Accept | None:
    """The notifications ``claims``' identity may receive (None: none at all)."""
    try:
        principal = await load_principal(platform.db, claims)
    except Unauthorized:
        return None
    return notification_access(principal)


def feed_for(state: State, platform: Platform) -> NotificationFeed:
    """The feed of one application (``app.state``), created on first use.

    One per application, hence per :class:`~attune.platform.Platform` (an app is built around one): a
    process that never serves a notification never declares a queue, and tests that build
    several apps get independent hubs. No await between the check and the assignment, so
    concurrent first requests share one feed.
    """
    feed = getattr(state, "notification_feed", None)
    if not isinstance(feed, NotificationFeed):
        feed = NotificationFeed(platform)
        state.notification_feed = feed
    return feed


def _loads(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


async def _pump(websocket: WebSocket, subscription: Subscription, filters: set[Filter]) -> None:
    """Send notifications and read client messages until one side stops."""
    reader = asyncio.create_task(_read_client(websocket, filters), name="ws-reader")
    try:
        while not reader.done():
            getter = asyncio.ensure_future(subscription.get())
            done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await getter
                break
            notification = getter.result()
            if notification is None:  # the hub closed (shutdown)
                break
            await websocket.send_text(notification.text)
    finally:
        if not reader.done():
            reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
            await reader


async def _read_client(websocket: WebSocket, filters: set[Filter]) -> None:
    """Apply subscribe/unsubscribe/ping messages until the client disconnects."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is None:
            continue  # binary frames are ignored
        reply = apply_message(_loads(text), filters)
        if reply is not None:
            await websocket.send_json(reply)


def apply_message(message: dict[str, Any] | None, filters: set[Filter]) -> dict[str, Any] | None:
    """Apply one client message to ``filters``; return the reply to send, if any."""
    if message is None:
        return {"type": "error", "message": "messages must be JSON objects"}
    kind = message.get("type")
    if kind == "ping":
        return {"type": "pong"}
    if kind == "auth":
        return None  # already authenticated; a repeated auth message is harmless
    if kind not in ("subscribe", "unsubscribe"):
        return {"type": "error", "message": f"unknown message type {kind!r}"}
    try:
        parsed = parse_filter(message.get("filter"))
    except FilterError as exc:
        return {"type": "error", "message": str(exc)}
    # The acknowledgement names the filter as the client wrote it, so it can match its request.
    if kind == "subscribe":
        filters.add(parsed)
        return {"type": "subscribed", "filter": message["filter"]}
    filters.discard(parsed)
    return {"type": "unsubscribed", "filter": message["filter"]}
