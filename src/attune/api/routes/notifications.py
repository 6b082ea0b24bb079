"""Real-time notifications served by the API process.

* ``WS /api/v1/notifications/ws`` — the notifier's WebSocket protocol (``attune.notifier.websocket``)
  on the API's own port, so the embedded server needs a single port. The WebSocket scope is not
  seen by ``ApiGuard``; the protocol authenticates itself (``?token=`` or a first auth message).
* ``GET /api/v1/executions/stream`` — server-sent events (docs/api.md): each execution
  created/status-changed notification as a bare ``data: <json>`` frame, ``:`` keep-alives every
  :data:`KEEPALIVE_SECONDS`; auth by ``?token=`` (an access or execution token: a long-lived
  refresh token does not belong in a URL, a sensor token only fires its triggers; docs/security.md).

Both deliver only what the identity may read (``attune.auth.principals.notification_access``): the
WebSocket closes with 4403 for an identity that may read no notifications, the stream answers 403.

Mounted before the executions router so ``/executions/stream`` is not taken for an id.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Query, Request, WebSocket
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask

from attune.api.authz import load_principal, notification_access, refusal
from attune.api.deps import PlatformDep
from attune.errors import Forbidden
from attune.notifier.hub import Accept, Notification, Subscription
from attune.notifier.websocket import WS_TOKEN_TYPES, authenticate, feed_for

router = APIRouter(tags=["notifications"])

#: Seconds between keep-alive comments on an idle event stream.
KEEPALIVE_SECONDS = 15.0
#: Channels the execution stream forwards (the workflow channel repeats a status change).
STREAM_CHANNELS = frozenset({"execution_created", "execution_status_changed"})


@router.websocket("/api/v1/notifications/ws")
async def notifications_ws(websocket: WebSocket) -> None:
    """The notification feed over WebSocket (see ``attune.notifier.websocket``)."""
    platform = websocket.app.state.platform
    await feed_for(websocket.app.state, platform).serve(websocket)


def execution_filter(execution_id: int | None) -> Accept:
    """The stream's selection: execution notifications, optionally of one execution only.

    With ``execution_id`` a notification is dropped only when it names a *different*
    ``entity_id``; one without an id still passes (docs/api.md).
    """

    def accept(notification: Notification) -> bool:
        if notification.entity_type != "execution" or notification.notification_type not in STREAM_CHANNELS:
            return False
        entity_id = notification.entity_id
        return execution_id is None or entity_id is None or entity_id == execution_id

    return accept


async def _events(subscription: Subscription) -> AsyncIterator[bytes]:
    # A first comment flushes the stream open before any change happens.
    yield b":\n\n"
    try:
        while not subscription.closed:
            notification = await subscription.get(timeout=KEEPALIVE_SECONDS)
            if notification is None:
                if subscription.closed:
                    return
                yield b":\n\n"
                continue
            yield f"data: {notification.text}\n\n".encode()
    finally:
        subscription.close()


@router.get(
    "/api/v1/executions/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def execution_stream(
    request: Request,
    platform: PlatformDep,
    token: Annotated[str | None, Query(description="An access (or execution) token")] = None,
    execution_id: Annotated[int | None, Query(description="Only this execution's notifications")] = None,
) -> StreamingResponse:
    """Server-sent events for execution changes (unbounded; nothing is replayed)."""
    claims = await authenticate(platform, token, WS_TOKEN_TYPES)
    principal = await load_principal(platform.db, claims)
    allowed = notification_access(principal)
    if allowed is None or not principal.may("executions", "read"):
        raise Forbidden(refusal("read", "executions", "the execution stream"))
    selected = execution_filter(execution_id)
    feed = feed_for(request.app.state, platform)
    # Subscribed before the response starts, so a change made once the headers arrive is seen.
    subscription = await feed.subscribe(lambda n: selected(n) and allowed(n))
    return StreamingResponse(
        _events(subscription),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        background=BackgroundTask(subscription.close),
    )
