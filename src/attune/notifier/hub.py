"""The per-process notification hub: one bus consumer, fanned out to in-process subscribers.

Change notifications (docs/notifications.md) reach the hub through a private queue bound to the
``attune.notifications`` fanout exchange — an in-process queue with the memory bus (embedded
server), a RabbitMQ queue exclusive to this connection in a scaled deployment. Each subscriber
(one WebSocket client, one SSE stream) gets a bounded queue: a slow subscriber loses its oldest
notifications rather than slowing anyone else down, and what it does get stays in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

from attune.bus.base import Bus, Consumer
from attune.messaging.messages import Envelope, MessageType
from attune.messaging.topology import NOTIFICATIONS_EXCHANGE, QueueSpec

log = logging.getLogger(__name__)

#: Per-subscriber queue length (docs/notifications.md: capacity 1000, slow consumers lose messages).
DEFAULT_CAPACITY = 1000
# Deliveries the hub's consumer takes at once. Handlers never await before fanning out, and
# the bus starts them in delivery order, so a large prefetch keeps the order (and the latency low).
_PREFETCH = 200


class Notification:
    """One client notification (docs/notifications.md) and its JSON text, serialised once for all
    the subscribers that send it — and not at all when none does (waiters read the fields)."""

    __slots__ = ("_text", "data")

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self._text: str | None = None

    @classmethod
    def of(cls, data: dict[str, Any]) -> Notification:
        """Wrap an envelope dict (``notification_type``, ``entity_type``, ``entity_id``, …)."""
        return cls(data)

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = json.dumps(self.data, separators=(",", ":"), default=str)
        return self._text

    @property
    def notification_type(self) -> str:
        return str(self.data.get("notification_type") or "")

    @property
    def entity_type(self) -> str:
        return str(self.data.get("entity_type") or "")

    @property
    def entity_id(self) -> int | None:
        value = self.data.get("entity_id")
        return value if isinstance(value, int) else None

    @property
    def user_id(self) -> int | None:
        value = self.data.get("user_id")
        if not isinstance(value, int):
            payload = self.data.get("payload")
            value = payload.get("user_id") if isinstance(payload, dict) else None
        return value if isinstance(value, int) else None


Accept = Callable[[Notification], bool]


class Subscription:
    """A subscriber's bounded, ordered queue; ``accept`` decides what it wants.

    ``accept`` is called at fan-out time, so it may read state the subscriber changes later
    (a WebSocket client's filter set).
    """

    def __init__(self, hub: NotificationHub, accept: Accept | None, capacity: int) -> None:
        self._hub = hub
        self._accept = accept
        self._items: deque[Notification] = deque(maxlen=capacity)
        self._ready = asyncio.Event()
        self.closed = False
        #: Notifications lost because this subscriber fell ``capacity`` behind.
        self.dropped = 0

    def offer(self, notification: Notification) -> None:
        """Queue ``notification`` if wanted; drop the oldest one when full."""
        if self.closed:
            return
        if self._accept is not None:
            try:
                if not self._accept(notification):
                    return
            except Exception:
                log.exception("a notification filter failed; skipping it for this subscriber")
                return
        if len(self._items) == self._items.maxlen:
            self.dropped += 1
        self._items.append(notification)
        self._ready.set()

    async def get(self, timeout: float | None = None) -> Notification | None:  # noqa: ASYNC109 - keep-alive loops
        """The next notification; ``None`` once closed, or after ``timeout`` seconds of silence."""
        while not self._items:
            if self.closed:
                return None
            self._ready.clear()
            if timeout is None:
                await self._ready.wait()
            else:
                try:
                    async with asyncio.timeout(timeout):
                        await self._ready.wait()
                except TimeoutError:
                    return None
        return self._items.popleft()

    def pending(self) -> int:
        """How many notifications wait to be taken."""
        return len(self._items)

    def close(self) -> None:
        """Stop receiving and wake a waiting ``get`` (idempotent)."""
        if not self.closed:
            self.closed = True
            self._hub._forget(self)
            self._ready.set()


class NotificationHub:
    """Consumes change notifications once per process and fans them out.

    Started lazily by the first subscriber (``await hub.start()``); stops by itself when
    ``stop`` is set, closing every subscription so their streams end.
    """

    def __init__(
        self, bus: Bus, *, stop: asyncio.Event | None = None, capacity: int = DEFAULT_CAPACITY
    ) -> None:
        self._bus = bus
        self._stop = stop
        self.capacity = capacity
        self.queue_name = f"attune.notifier.{uuid.uuid4().hex[:12]}"
        self._subscribers: set[Subscription] = set()
        self._consumer: Consumer | None = None
        self._start_lock = asyncio.Lock()
        self._watcher: asyncio.Task[None] | None = None
        self.closed = False

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def subscribe(self, accept: Accept | None = None, *, capacity: int | None = None) -> Subscription:
        """A new subscription (``accept=None`` takes everything); close it when done."""
        subscription = Subscription(self, accept, capacity or self.capacity)
        if self.closed:
            subscription.close()
        else:
            self._subscribers.add(subscription)
        return subscription

    async def start(self) -> None:
        """Declare the private queue and start consuming (idempotent, safe to race)."""
        async with self._start_lock:
            if self._consumer is not None or self.closed:
                return
            spec = QueueSpec(self.queue_name, ((NOTIFICATIONS_EXCHANGE, "#"),), exclusive=True)
            await self._bus.declare_queue(spec)
            self._consumer = await self._bus.consume(self.queue_name, self._on_message, prefetch=_PREFETCH)
            if self._stop is not None:
                self._watcher = asyncio.create_task(self._close_on_stop(self._stop), name="notification-hub")

    async def _close_on_stop(self, stop: asyncio.Event) -> None:
        await stop.wait()
        await self.close()

    async def close(self) -> None:
        """Stop consuming and end every subscription."""
        if self.closed:
            return
        self.closed = True
        for subscription in list(self._subscribers):
            subscription.close()
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            with contextlib.suppress(Exception):
                await consumer.cancel()
        watcher, self._watcher = self._watcher, None
        if watcher is not None and watcher is not asyncio.current_task():
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    def broadcast(self, notification: Notification) -> None:
        """Hand ``notification`` to every subscriber that wants it (synchronous, never blocks)."""
        for subscription in list(self._subscribers):
            subscription.offer(notification)

    async def _on_message(self, envelope: Envelope) -> None:
        # No await before the fan-out: that is what keeps deliveries in order (see _PREFETCH).
        if envelope.message_type is MessageType.CHANGE_NOTIFICATION:
            self._deliver(envelope.payload, envelope.message_id)
        elif envelope.message_type is MessageType.CHANGE_NOTIFICATIONS:
            for data in envelope.payload.get("notifications") or ():
                if isinstance(data, dict):
                    self._deliver(data, envelope.message_id)

    def _deliver(self, data: dict[str, Any], message_id: object) -> None:
        if not isinstance(data.get("entity_type"), str) or "notification_type" not in data:
            log.warning("dropping a change notification without entity_type: %s", message_id)
            return
        self.broadcast(Notification.of(dict(data)))

    def _forget(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)
