"""RabbitMQ bus over aio-pika (``amqp://`` / ``amqps://``).

One robust connection; one publisher-confirm channel for declarations and publishing; one
channel per consumer so that ``basic.qos`` bounds exactly that consumer's handlers in flight.
aio-pika runs each delivery callback in its own task, so prefetch is the concurrency limit.

Reconnection (docs/operations.md "Guarantees"): the first connection is retried with exponential
backoff (0.5 s doubling to 10 s, for up to ``connect_patience`` seconds) so a process may start
before the broker. A connection lost later is re-established by aio-pika's robust connection,
which re-declares the queues and restores the consumers; the interval between attempts backs off
the same way and is reset once connected. Both are logged (``lost the connection to RabbitMQ``,
``reconnected to RabbitMQ``). Deliveries not yet acknowledged when the connection dropped come
back (at-least-once); publishes that failed meanwhile stay in the outbox and are sent again.

Batches (``publish_many``, docs/performance.md "Batched publisher confirms"): the messages go out
back to back on the publishing channel — one task per message, started in order; aiormq writes
each publish's frames under the channel's FIFO lock, so they reach the broker in that order — and
the confirms are awaited together. The broker syncs a batch of persistent messages to disk once
instead of once per message.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import aio_pika
import aio_pika.abc
import aio_pika.exceptions

from attune.bus.base import (
    BusError,
    Consumer,
    Handler,
    Outgoing,
    PublishOutcome,
    drain_tasks,
    handle_delivery,
)
from attune.messaging import topology
from attune.messaging.messages import Envelope
from attune.messaging.topology import QueueSpec

logger = logging.getLogger(__name__)

# join() polls the broker; two idle polls in a row cover a delivery still on the wire.
_JOIN_POLL_SECONDS = 0.05
#: Reconnection backoff: first wait, growth factor and cap (seconds).
RECONNECT_FIRST = 0.5
RECONNECT_FACTOR = 2.0
RECONNECT_MAX = 10.0


def _outcome(task: asyncio.Future[None]) -> PublishOutcome:
    """A finished publish's outcome (a publish cancelled from inside counts as not confirmed)."""
    if task.cancelled():
        return asyncio.CancelledError()
    return task.exception()


class _RabbitDelivery:
    """A parsed delivery whose settlement goes straight to the broker."""

    def __init__(self, message: aio_pika.abc.AbstractIncomingMessage, envelope: Envelope) -> None:
        self.envelope = envelope
        self.routing_key = message.routing_key or ""
        self.redelivered = bool(message.redelivered)
        self._message = message

    async def ack(self) -> None:
        await self._message.ack()

    async def nack(self, requeue: bool) -> None:
        # reject(requeue=False) dead-letters through the queue's x-dead-letter-exchange.
        await self._message.reject(requeue=requeue)


class _RabbitConsumer:
    """A consumer on its own channel."""

    def __init__(
        self,
        bus: RabbitMQBus,
        channel: aio_pika.abc.AbstractRobustChannel,
        queue: aio_pika.abc.AbstractQueue,
        handler: Handler,
        name: str,
    ) -> None:
        self.bus = bus
        self.name = name
        self.channel = channel
        self.queue = queue
        self.handler = handler
        self.tag: str | None = None
        self.tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False

    async def on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        if self._stopping:
            # Arrived between basic.cancel and cancel-ok: hand it back untouched.
            await message.reject(requeue=True)
            return
        task = asyncio.current_task()
        if task is not None:
            self.tasks.add(task)
        self.bus._running += 1
        try:
            try:
                envelope = Envelope.from_json(message.body)
            except ValueError:
                logger.warning("dead-lettering an invalid message body from %s", self.queue.name)
                await message.reject(requeue=False)
                return
            await handle_delivery(_RabbitDelivery(message, envelope), self.handler, logger)
        finally:
            self.bus._running -= 1
            if task is not None:
                self.tasks.discard(task)

    async def cancel(self) -> None:
        """Stop taking deliveries, wait for handlers in flight, then close the channel."""
        if self._stopping:
            return
        self._stopping = True
        self.bus._consumers.discard(self)
        if self.tag is not None and not self.channel.is_closed:
            await self.queue.cancel(self.tag)
        await drain_tasks(self.tasks, self.bus.shutdown_grace)
        if not self.channel.is_closed:
            await self.channel.close()


class RabbitMQBus:
    """The RabbitMQ implementation of the bus port.

    ``prefix`` is prepended to every exchange and queue name (tests use it to stay out of the
    way of a running deployment). ``shutdown_grace`` bounds how long cancelling a consumer waits
    for its handlers before cancelling them (their messages are requeued).
    """

    #: Messages are persistent, queues durable and publishes confirmed: the broker keeps them.
    durable = True

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "",
        publish_timeout: float = 30.0,
        shutdown_grace: float = 10.0,
        connect_patience: float = 120.0,
    ) -> None:
        self._url = url
        self._connect_patience = connect_patience
        self._lost_at: float | None = None
        self._backoff_task: asyncio.Task[None] | None = None
        self.shutdown_grace = shutdown_grace
        self._prefix = prefix
        self._publish_timeout = publish_timeout
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._channel: aio_pika.abc.AbstractRobustChannel | None = None
        self._inspect_channel: aio_pika.abc.AbstractRobustChannel | None = None
        self._exchanges: dict[str, aio_pika.abc.AbstractExchange] = {}
        self._specs: dict[str, QueueSpec] = {}
        self._consumers: set[_RabbitConsumer] = set()
        self._running = 0

    async def start(self) -> None:
        """Connect, open the publishing channel and declare exchanges and the dead-letter queue."""
        if self._connection is not None:
            return
        self._connection = await self._connect()
        self._connection.close_callbacks.add(self._on_connection_lost)
        self._connection.reconnect_callbacks.add(self._on_reconnected)
        self._channel = await self._connection.channel(publisher_confirms=True)
        # Passive declares of a missing queue close their channel; keep that away from publishing.
        self._inspect_channel = await self._connection.channel(publisher_confirms=False)
        for exchange in topology.EXCHANGES:
            try:
                self._exchanges[exchange.name] = await self._channel.declare_exchange(
                    self._name(exchange.name), aio_pika.ExchangeType(exchange.type.value), durable=True
                )
            except aio_pika.exceptions.ChannelClosed as exc:
                # Typically a leftover exchange of another type (older deployments had a direct DLX).
                raise BusError(
                    f"cannot declare exchange {exchange.name!r} as {exchange.type.value}: {exc}"
                ) from exc
        await self.declare_queue(topology.DLX_QUEUE)

    async def _connect(self) -> aio_pika.abc.AbstractRobustConnection:
        """The first connection, retried with backoff for up to ``connect_patience`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._connect_patience
        delay = RECONNECT_FIRST
        while True:
            try:
                connection = await aio_pika.connect_robust(self._url, reconnect_interval=RECONNECT_FIRST)
            except (ConnectionError, OSError, aio_pika.exceptions.AMQPConnectionError) as exc:
                if loop.time() + delay > deadline:
                    raise BusError(f"cannot connect to RabbitMQ: {exc}") from exc
                logger.warning("cannot connect to RabbitMQ (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * RECONNECT_FACTOR, RECONNECT_MAX)
                continue
            if delay > RECONNECT_FIRST:
                logger.info("connected to RabbitMQ")
            return connection

    def _on_connection_lost(self, _sender: object, exc: BaseException | None = None) -> None:
        if self._connection is None or exc is None or self._lost_at is not None:
            return  # our own close(), or already reconnecting
        self._lost_at = asyncio.get_running_loop().time()
        logger.warning("lost the connection to RabbitMQ (%s); reconnecting with backoff", exc)
        self._backoff_task = asyncio.get_running_loop().create_task(self._back_off())

    async def _back_off(self) -> None:
        """Lengthen aio-pika's reconnect interval while the broker stays away."""
        connection = self._connection
        delay = RECONNECT_FIRST
        while isinstance(connection, aio_pika.RobustConnection) and self._lost_at is not None:
            connection.reconnect_interval = delay  # read before each attempt
            await asyncio.sleep(delay)
            delay = min(delay * RECONNECT_FACTOR, RECONNECT_MAX)

    def _on_reconnected(self, sender: object) -> None:
        lost_at, self._lost_at = self._lost_at, None
        if self._backoff_task is not None:
            self._backoff_task.cancel()
            self._backoff_task = None
        if isinstance(self._connection, aio_pika.RobustConnection):
            self._connection.reconnect_interval = RECONNECT_FIRST
        down = asyncio.get_running_loop().time() - lost_at if lost_at is not None else 0.0
        logger.warning("reconnected to RabbitMQ after %.1f s; queues and consumers restored", down)

    async def close(self) -> None:
        """Cancel consumers (waiting for their handlers) and close the connection."""
        for consumer in list(self._consumers):
            await consumer.cancel()
        if self._backoff_task is not None:
            self._backoff_task.cancel()
            self._backoff_task = None
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()
        self._channel = None
        self._inspect_channel = None
        self._exchanges.clear()

    async def declare_queue(self, spec: QueueSpec) -> None:
        """Declare a durable queue with its DLX/TTL arguments and bindings (idempotent)."""
        channel = self._require_channel()
        try:
            queue = await channel.declare_queue(self._name(spec.name), **self._declare_options(spec))
            for exchange, pattern in spec.bindings:
                await queue.bind(self._name(exchange), pattern)
        except aio_pika.exceptions.ChannelClosed as exc:
            raise BusError(f"cannot declare queue {spec.name!r}: {exc}") from exc
        self._specs[spec.name] = spec

    async def publish(self, exchange: str, routing_key: str, envelope: Envelope) -> None:
        """Publish persistently and wait for the broker's confirm (``publish_timeout``)."""
        await self._publish(exchange, routing_key, self._message(envelope))

    async def publish_many(self, messages: Sequence[Outgoing]) -> list[PublishOutcome]:
        """Publish back to back in order, then wait for every confirm (each ``publish_timeout``).

        An outcome is ``None`` once the broker has confirmed that message; a refused, timed-out or
        lost one carries its error, and the messages after it are not held back by it.
        """
        tasks = [
            asyncio.ensure_future(self._publish(exchange, routing_key, self._message(envelope)))
            for exchange, routing_key, envelope in messages
        ]
        if not tasks:
            return []
        try:
            await asyncio.wait(tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)
            raise
        return [_outcome(task) for task in tasks]

    @staticmethod
    def _message(envelope: Envelope) -> aio_pika.Message:
        return aio_pika.Message(
            envelope.to_json(),
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=envelope.message_id,
            correlation_id=envelope.correlation_id,
            timestamp=envelope.timestamp,
            content_type="application/json",
            type=envelope.message_type.value,
        )

    async def publish_raw(self, exchange: str, routing_key: str, body: bytes) -> None:
        """Publish an already serialised body (also used to inject invalid bodies in tests)."""
        message = aio_pika.Message(
            body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT, content_type="application/json"
        )
        await self._publish(exchange, routing_key, message)

    async def _publish(self, exchange: str, routing_key: str, message: aio_pika.Message) -> None:
        target = self._exchanges.get(exchange)
        if target is None:
            raise BusError(f"no exchange {exchange!r}")
        try:
            # mandatory=False: an unroutable message is dropped, as the port promises.
            await target.publish(message, routing_key, mandatory=False, timeout=self._publish_timeout)
        except aio_pika.exceptions.DeliveryError as exc:
            raise BusError(f"the broker refused a message to {exchange!r}: {exc}") from exc

    async def consume(self, queue: str, handler: Handler, *, prefetch: int = 10) -> Consumer:
        """Consume ``queue`` on a dedicated channel with ``basic.qos(prefetch)``."""
        connection = self._require_connection()
        channel = await connection.channel(publisher_confirms=False)
        try:
            await channel.set_qos(prefetch_count=prefetch)
            spec = self._specs.get(queue)
            if spec is not None:
                # Declared with full arguments so the robust channel can restore it on reconnect.
                amqp_queue = await channel.declare_queue(self._name(queue), **self._declare_options(spec))
            else:
                amqp_queue = await channel.declare_queue(self._name(queue), passive=True)
        except aio_pika.exceptions.ChannelClosed as exc:
            await channel.close()
            raise BusError(f"cannot consume queue {queue!r}: {exc}") from exc
        consumer = _RabbitConsumer(self, channel, amqp_queue, handler, queue)
        consumer.tag = await amqp_queue.consume(consumer.on_message, no_ack=False)
        self._consumers.add(consumer)
        return consumer

    async def join(self, timeout: float | None = None) -> None:  # noqa: ASYNC109 - port signature
        """Best effort: poll consumed queue depths and handlers in flight until idle twice."""
        async with asyncio.timeout(timeout):
            idle_polls = 0
            while idle_polls < 2:
                idle = self._running == 0 and await self._consumed_queues_empty()
                idle_polls = idle_polls + 1 if idle else 0
                await asyncio.sleep(_JOIN_POLL_SECONDS)

    async def queue_depth(self, queue: str) -> int:
        """Messages ready in a queue (excluding deliveries not yet acknowledged)."""
        if self._inspect_channel is None:
            raise BusError("the bus is not started")
        channel = await self._inspect_channel.get_underlay_channel()
        try:
            result = await channel.queue_declare(self._name(queue), passive=True)
        except aio_pika.exceptions.ChannelClosed as exc:
            raise BusError(f"no queue {queue!r}: {exc}") from exc
        return int(result.message_count or 0)

    async def delete_declared(self) -> None:
        """Cancel consumers and delete every queue and exchange this bus declared (test teardown)."""
        for consumer in list(self._consumers):
            await consumer.cancel()
        channel = await self._require_channel().get_underlay_channel()
        for name in self._specs:
            await channel.queue_delete(self._name(name))
        for name in self._exchanges:
            await channel.exchange_delete(self._name(name))
        self._specs.clear()

    async def _consumed_queues_empty(self) -> bool:
        for queue in {consumer.name for consumer in self._consumers}:
            if await self.queue_depth(queue):
                return False
        return True

    def _name(self, name: str) -> str:
        return self._prefix + name

    def _declare_options(self, spec: QueueSpec) -> dict[str, Any]:
        arguments = self._arguments(spec)
        if spec.exclusive:
            return {"durable": False, "exclusive": True, "auto_delete": True, "arguments": arguments}
        return {"durable": True, "arguments": arguments}

    def _arguments(self, spec: QueueSpec) -> dict[str, Any]:
        arguments: dict[str, Any] = {}
        if spec.dead_letter:
            arguments["x-dead-letter-exchange"] = self._name(topology.DLX_EXCHANGE)
        if spec.ttl_ms is not None:
            arguments["x-message-ttl"] = spec.ttl_ms
        return arguments

    def _require_connection(self) -> aio_pika.abc.AbstractRobustConnection:
        if self._connection is None:
            raise BusError("the bus is not started")
        return self._connection

    def _require_channel(self) -> aio_pika.abc.AbstractRobustChannel:
        if self._channel is None:
            raise BusError("the bus is not started")
        return self._channel
