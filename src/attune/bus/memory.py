"""In-process bus with AMQP semantics, for the embedded deployment and for tests.

Not a mock: it routes by topic pattern, shares a queue between competing consumers
(round-robin), bounds handlers in flight by prefetch, requeues, dead-letters and expires
messages. Bodies are stored serialised so every consumer gets its own copy and a payload that
would not survive the broker fails here too.

It is not durable: its queues die with the process. So it reports settlement instead
(``durable = False``): a listener added with :meth:`MemoryBus.add_settle_listener` hears a
message id once every copy of that message has been acknowledged, or dropped for good (routed
nowhere, or rejected from a queue without dead-letter exchange). A dead-lettered copy stays
unsettled until the dead-letter queue's consumer has handled it. The outbox relay keeps a row
until then, so a crash of the process never loses a message a consumer had not finished with
(docs/operations.md, "Guarantees").
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence

from attune.bus.base import (
    BusError,
    Consumer,
    Handler,
    Outgoing,
    PublishOutcome,
    drain_tasks,
    handle_delivery,
    publish_each,
)
from attune.messaging import topology
from attune.messaging.messages import Envelope
from attune.messaging.topology import ExchangeType, QueueSpec

logger = logging.getLogger(__name__)


class _Message:
    __slots__ = ("body", "expires_at", "message_id", "redelivered", "routing_key")

    def __init__(self, body: bytes, routing_key: str, message_id: str | None = None) -> None:
        self.body = body
        self.routing_key = routing_key
        self.redelivered = False
        self.expires_at: float | None = None
        # Set when the publisher asked to hear when every copy is settled (see MemoryBus).
        self.message_id = message_id


class _Queue:
    """One queue: ready messages plus the consumers competing for them."""

    def __init__(self, bus: MemoryBus, spec: QueueSpec) -> None:
        self.bus = bus
        self.spec = spec
        self.ready: deque[_Message] = deque()
        self.consumers: list[_MemoryConsumer] = []
        self._next_consumer = 0

    def put(self, message: _Message) -> None:
        if self.spec.ttl_ms is not None:
            loop = asyncio.get_running_loop()
            message.expires_at = loop.time() + self.spec.ttl_ms / 1000
            # Expire even when nobody consumes the queue (a dead worker's dispatch queue).
            loop.call_later(self.spec.ttl_ms / 1000, self.dispatch)
        self.ready.append(message)
        self.dispatch()

    def requeue(self, message: _Message) -> None:
        message.redelivered = True
        self.ready.appendleft(message)
        self.dispatch()

    def dispatch(self) -> None:
        """Hand ready messages to consumers with free prefetch slots, round-robin."""
        self._expire()
        while self.ready:
            consumer = self._pick_consumer()
            if consumer is None:
                return
            consumer.deliver(self.ready.popleft())
            self._expire()

    def _pick_consumer(self) -> _MemoryConsumer | None:
        count = len(self.consumers)
        for offset in range(count):
            index = (self._next_consumer + offset) % count
            consumer = self.consumers[index]
            if consumer.has_capacity():
                self._next_consumer = (index + 1) % count
                return consumer
        return None

    def _expire(self) -> None:
        # As in RabbitMQ, only the head is checked; a per-queue TTL keeps the head the oldest.
        if self.spec.ttl_ms is None:
            return
        now = asyncio.get_running_loop().time()
        while self.ready and (expires := self.ready[0].expires_at) is not None and expires <= now:
            self.bus._dead_letter(self, self.ready.popleft())

    def reject(self, message: _Message) -> None:
        self.bus._dead_letter(self, message)


class _MemoryDelivery:
    """A delivery of the memory bus; settles back into its queue."""

    def __init__(self, consumer: _MemoryConsumer, message: _Message, envelope: Envelope) -> None:
        self.envelope = envelope
        self.routing_key = message.routing_key
        self.redelivered = message.redelivered
        self._consumer = consumer
        self._message = message
        self._settled = False

    async def ack(self) -> None:
        self._settle()
        self._consumer.bus._settled(self._message)
        self._consumer.queue.dispatch()

    async def nack(self, requeue: bool) -> None:
        self._settle()
        if requeue:
            self._consumer.queue.requeue(self._message)
        else:
            self._consumer.queue.reject(self._message)
            self._consumer.queue.dispatch()

    def _settle(self) -> None:
        if self._settled:
            raise BusError("delivery already acknowledged")
        self._settled = True
        self._consumer.unsettled -= 1


class _MemoryConsumer:
    """A subscription to one queue, running each delivery's handler in its own task."""

    def __init__(self, bus: MemoryBus, queue: _Queue, handler: Handler, prefetch: int) -> None:
        self.bus = bus
        self.queue = queue
        self.handler = handler
        self.prefetch = prefetch
        self.unsettled = 0
        self.active = True
        self.tasks: set[asyncio.Task[None]] = set()

    def has_capacity(self) -> bool:
        # prefetch 0 means unlimited, as in AMQP basic.qos.
        return self.active and (self.prefetch <= 0 or self.unsettled < self.prefetch)

    def deliver(self, message: _Message) -> None:
        self.unsettled += 1
        self.bus._running += 1
        task = asyncio.get_running_loop().create_task(self._run(message))
        self.tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        self.bus._running -= 1
        if not task.cancelled() and (error := task.exception()) is not None:
            logger.error("memory bus delivery task failed", exc_info=error)
        self.bus._notify()

    async def _run(self, message: _Message) -> None:
        try:
            envelope = Envelope.from_json(message.body)
        except ValueError:
            logger.warning("dead-lettering an invalid message body from %s", self.queue.spec.name)
            self.unsettled -= 1
            self.queue.reject(message)
            self.queue.dispatch()
            return
        await handle_delivery(_MemoryDelivery(self, message, envelope), self.handler, logger)

    async def cancel(self) -> None:
        """Stop taking deliveries and wait for the handlers in flight to finish."""
        if self.active:
            self.active = False
            self.queue.consumers.remove(self)
            self.bus._consumers.discard(self)
            if self.queue.spec.exclusive and not self.queue.consumers:
                self.bus._delete_queue(self.queue)
        await drain_tasks(self.tasks, self.bus.shutdown_grace)
        self.bus._notify()


class MemoryBus:
    """The ``memory://`` bus. ``prefix`` is accepted for symmetry; memory buses share nothing.

    ``shutdown_grace`` bounds how long cancelling a consumer waits for its handlers.
    """

    #: Messages live in this process only; see the module docstring.
    durable = False

    def __init__(self, *, prefix: str = "", shutdown_grace: float = 10.0) -> None:
        self.prefix = prefix
        self.shutdown_grace = shutdown_grace
        self._exchanges: dict[str, ExchangeType] = {}
        self._bindings: dict[str, list[tuple[str, _Queue]]] = {}
        self._queues: dict[str, _Queue] = {}
        self._routes: dict[tuple[str, str], list[_Queue]] = {}
        self._consumers: set[_MemoryConsumer] = set()
        self._idle_waiters: list[asyncio.Future[None]] = []
        self._running = 0
        self._started = False
        # message id → copies not yet settled (only for messages published with tracking).
        self._unsettled: dict[str, int] = {}
        self._settle_listeners: list[Callable[[str], None]] = []

    async def start(self) -> None:
        """Declare the exchanges and the dead-letter queue."""
        for exchange in topology.EXCHANGES:
            self._exchanges[exchange.name] = exchange.type
            self._bindings.setdefault(exchange.name, [])
        self._started = True
        await self.declare_queue(topology.DLX_QUEUE)

    async def close(self) -> None:
        """Cancel every consumer, waiting for handlers in flight."""
        for consumer in list(self._consumers):
            await consumer.cancel()
        self._started = False

    async def declare_queue(self, spec: QueueSpec) -> None:
        """Declare a queue and add its bindings (idempotent)."""
        self._require_started()
        queue = self._queues.get(spec.name)
        if queue is None:
            queue = self._queues[spec.name] = _Queue(self, spec)
        for exchange, pattern in spec.bindings:
            if exchange not in self._exchanges:
                raise BusError(f"cannot bind {spec.name!r}: no exchange {exchange!r}")
            bindings = self._bindings[exchange]
            if (pattern, queue) not in bindings:
                bindings.append((pattern, queue))
        self._routes.clear()

    async def publish(self, exchange: str, routing_key: str, envelope: Envelope) -> None:
        """Route a message to every queue bound with a matching pattern (settlement is tracked
        by ``envelope.message_id`` once a listener is registered)."""
        self._route_body(exchange, routing_key, envelope.to_json(), envelope.message_id)

    async def publish_many(self, messages: Sequence[Outgoing]) -> list[PublishOutcome]:
        """One ``publish`` after another (routing never waits here)."""
        return await publish_each(self, messages)

    async def publish_raw(self, exchange: str, routing_key: str, body: bytes) -> None:
        """Route an already serialised body (also used to inject invalid bodies in tests)."""
        self._route_body(exchange, routing_key, body)

    def _route_body(
        self, exchange: str, routing_key: str, body: bytes, message_id: str | None = None
    ) -> None:
        self._require_started()
        queues = self._route(exchange, routing_key)
        if message_id is not None and not self._settle_listeners:
            message_id = None
        if message_id is not None:
            if not queues:
                self._settled_id(message_id)
                return
            self._unsettled[message_id] = self._unsettled.get(message_id, 0) + len(queues)
        for queue in queues:
            queue.put(_Message(body, routing_key, message_id))

    def add_settle_listener(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(message_id)`` once every copy of a published message is settled."""
        self._settle_listeners.append(listener)

    def _settled(self, message: _Message) -> None:
        """One copy of ``message`` is done with (acknowledged, or dropped for good)."""
        message_id = message.message_id
        if message_id is None:
            return
        left = self._unsettled.get(message_id, 0) - 1
        if left > 0:
            self._unsettled[message_id] = left
            return
        self._unsettled.pop(message_id, None)
        self._settled_id(message_id)

    def _settled_id(self, message_id: str) -> None:
        for listener in self._settle_listeners:
            try:
                listener(message_id)
            except Exception:
                logger.exception("settle listener failed for %s", message_id)

    async def consume(self, queue: str, handler: Handler, *, prefetch: int = 10) -> Consumer:
        """Start a consumer on a declared queue; ready messages are delivered at once."""
        self._require_started()
        target = self._queues.get(queue)
        if target is None:
            raise BusError(f"no queue {queue!r}")
        consumer = _MemoryConsumer(self, target, handler, prefetch)
        target.consumers.append(consumer)
        self._consumers.add(consumer)
        target.dispatch()
        return consumer

    async def join(self, timeout: float | None = None) -> None:  # noqa: ASYNC109 - port signature
        """Wait until every consumed queue is empty and no handler runs (exact)."""
        if self._is_idle():
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._idle_waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                await waiter
        finally:
            if waiter in self._idle_waiters:
                self._idle_waiters.remove(waiter)

    async def queue_depth(self, queue: str) -> int:
        """Messages ready in a queue (not counting those being handled)."""
        target = self._queues.get(queue)
        if target is None:
            raise BusError(f"no queue {queue!r}")
        target.dispatch()  # applies TTL expiry before counting
        return len(target.ready)

    async def delete_declared(self) -> None:
        """Cancel consumers and forget every queue (test teardown)."""
        await self.close()
        self._queues.clear()
        self._routes.clear()
        for bindings in self._bindings.values():
            bindings.clear()

    def _delete_queue(self, queue: _Queue) -> None:
        """Forget a queue and its bindings (an exclusive queue whose last consumer left)."""
        if self._queues.get(queue.spec.name) is queue:
            del self._queues[queue.spec.name]
        for exchange, bindings in self._bindings.items():
            self._bindings[exchange] = [(p, q) for p, q in bindings if q is not queue]
        self._routes.clear()

    def _route(self, exchange: str, routing_key: str) -> list[_Queue]:
        cached = self._routes.get((exchange, routing_key))
        if cached is not None:
            return cached
        kind = self._exchanges.get(exchange)
        if kind is None:
            raise BusError(f"no exchange {exchange!r}")
        matched: list[_Queue] = []
        for pattern, queue in self._bindings[exchange]:
            hit = kind is ExchangeType.FANOUT or topology.topic_matches(pattern, routing_key)
            if hit and queue not in matched:
                matched.append(queue)
        self._routes[(exchange, routing_key)] = matched
        return matched

    def _dead_letter(self, queue: _Queue, message: _Message) -> None:
        # Without a DLX the broker discards rejected and expired messages.
        if not queue.spec.dead_letter:
            logger.warning("dropping a rejected message from %s (no dead-letter exchange)", queue.spec.name)
            self._settled(message)
            return
        targets = self._route(topology.DLX_EXCHANGE, message.routing_key)
        if message.message_id is not None and targets:
            # The dead-letter copies carry the settlement on: the executor fails an expired
            # dispatch from there, and that must survive a crash too.
            self._unsettled[message.message_id] = self._unsettled.get(message.message_id, 0) + len(targets)
        for target in targets:
            target.put(_Message(message.body, message.routing_key, message.message_id))
        self._settled(message)

    def _is_idle(self) -> bool:
        if self._running:
            return False
        return not any(queue.ready for queue in self._queues.values() if queue.consumers)

    def _notify(self) -> None:
        if self._idle_waiters and self._is_idle():
            for waiter in self._idle_waiters:
                if not waiter.done():
                    waiter.set_result(None)
            self._idle_waiters.clear()

    def _require_started(self) -> None:
        if not self._started:
            raise BusError("the bus is not started")
