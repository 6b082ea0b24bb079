"""The bus port: publish envelopes to exchanges, consume queues with a handler.

Consumer semantics (docs/operations.md), shared by every implementation:

* the bus runs the handler once per delivery, at most ``prefetch`` at a time per consumer;
* the handler returns → ack;
* the body is not a valid envelope → reject without requeue (dead-lettered);
* the handler raises a *transient* error (``Retryable``, ``ConnectionError``, ``TimeoutError``,
  or the database being unreachable, :func:`attune.db.database.is_disconnect`) → nack with
  requeue, so the message is delivered again (after :data:`REQUEUE_DELAY` when the database or
  network is down, so an outage does not spin the consumer);
* any other exception → reject without requeue → ``attune.dlx`` → ``attune.dlx.queue`` (for
  queues declared with ``dead_letter=True``; otherwise the message is dropped).

Delivery is at-least-once, so handlers must be idempotent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from attune.db.database import is_disconnect
from attune.errors import AttuneError
from attune.messaging.messages import Envelope
from attune.messaging.topology import QueueSpec

Handler = Callable[[Envelope], Awaitable[None]]
#: One message for :meth:`Bus.publish_many`: ``(exchange, routing_key, envelope)``.
Outgoing = tuple[str, str, Envelope]
#: Per message of a :meth:`Bus.publish_many` batch: ``None`` once the bus holds it, else why not.
PublishOutcome = BaseException | None


class BusError(AttuneError):
    """The broker refused an operation (unknown exchange or queue, conflicting declaration…)."""


class Retryable(AttuneError):
    """Raised by a handler for a transient failure: the message is requeued, not dead-lettered."""


# Handler errors that mean "try again later" rather than "this message is bad".
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (Retryable, ConnectionError, TimeoutError)
#: Seconds a message is held before it is requeued after a connection error.
REQUEUE_DELAY = 1.0


def is_transient(error: BaseException) -> bool:
    """Whether a handler error should requeue the message instead of dead-lettering it."""
    return isinstance(error, TRANSIENT_ERRORS) or is_disconnect(error)


class Delivery(Protocol):
    """One message handed to a consumer; settled exactly once with ``ack`` or ``nack``."""

    envelope: Envelope
    routing_key: str
    redelivered: bool

    async def ack(self) -> None: ...

    async def nack(self, requeue: bool) -> None: ...


class Consumer(Protocol):
    """A running subscription to one queue."""

    async def cancel(self) -> None:
        """Stop taking deliveries and wait for the handlers in flight to finish.

        Handlers still running after the bus's shutdown grace period are cancelled and their
        messages requeued.
        """
        ...


class Bus(Protocol):
    """The message bus port. Names are the unprefixed names of ``attune.messaging.topology``.

    ``durable`` says whether a message survives a crash of this process once ``publish`` has
    returned (a broker stores it). A bus that is not durable offers ``add_settle_listener``
    instead: it reports each message id once every copy has been handled (``SettlingBus``),
    and the outbox keeps the row until then.
    """

    durable: bool

    async def start(self) -> None:
        """Connect and declare the exchanges and the dead-letter queue (idempotent)."""
        ...

    async def close(self) -> None:
        """Cancel every consumer (waiting for handlers in flight) and disconnect."""
        ...

    async def declare_queue(self, spec: QueueSpec) -> None:
        """Declare a queue and its bindings (idempotent)."""
        ...

    async def publish(self, exchange: str, routing_key: str, envelope: Envelope) -> None:
        """Publish persistently; returns once the broker has accepted the message.

        A message that matches no bound queue is dropped, as in AMQP.
        """
        ...

    async def publish_many(self, messages: Sequence[Outgoing]) -> list[PublishOutcome]:
        """Publish ``messages`` in order, as ``publish`` would; one outcome per message.

        Unlike ``publish`` it does not raise for a message the broker refused: that message's
        outcome is the error and ``None`` marks each message the bus holds. A caller must treat
        only those as sent (docs/operations.md, "Guarantees"). :func:`publish_each` is the
        one-at-a-time implementation.
        """
        ...

    async def consume(self, queue: str, handler: Handler, *, prefetch: int = 10) -> Consumer:
        """Run ``handler`` for each delivery of ``queue`` with the semantics above."""
        ...

    async def queue_depth(self, queue: str) -> int:
        """Messages ready in ``queue``, not counting deliveries being handled (``BusError`` when
        the queue does not exist)."""
        ...

    async def join(self, timeout: float | None = None) -> None:  # noqa: ASYNC109 - port signature
        """Wait until every consumed queue is empty and no handler is running.

        Raises ``TimeoutError`` after ``timeout`` seconds. Queues nobody consumes are ignored
        (they can never drain).
        """
        ...


@runtime_checkable
class SettlingBus(Bus, Protocol):
    """A bus that reports when every copy of a published message has been handled."""

    def add_settle_listener(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(message_id)`` once every copy of a published message is settled."""
        ...


async def publish_each(bus: Bus, messages: Sequence[Outgoing]) -> list[PublishOutcome]:
    """``publish_many`` one message at a time: stops at the first failure, whose error every
    message from there on gets (none of them was tried after it, so none overtakes it)."""
    outcomes: list[PublishOutcome] = []
    for index, (exchange, routing_key, envelope) in enumerate(messages):
        try:
            await bus.publish(exchange, routing_key, envelope)
        except Exception as exc:
            outcomes.extend(exc for _ in messages[index:])
            break
        outcomes.append(None)
    return outcomes


async def drain_tasks(tasks: set[asyncio.Task[Any]], grace: float) -> None:
    """Wait up to ``grace`` seconds for handler tasks, then cancel the rest (they requeue)."""
    current = asyncio.current_task()
    # A handler may cancel its own consumer; it must not wait for itself.
    pending = {task for task in tasks if task is not current}
    if not pending:
        return
    _, stuck = await asyncio.wait(pending, timeout=grace)
    for task in stuck:
        task.cancel()
    if stuck:
        await asyncio.wait(stuck)


async def handle_delivery(delivery: Delivery, handler: Handler, logger: logging.Logger) -> None:
    """Run ``handler`` for one parsed delivery and settle it (the shared consumer semantics)."""
    envelope = delivery.envelope
    try:
        await handler(envelope)
    except asyncio.CancelledError:
        # The consumer is shutting down mid-handler: give the message back for another try.
        await delivery.nack(requeue=True)
        raise
    except Exception as exc:
        if is_transient(exc):
            logger.warning(
                "requeueing %s %s after a transient error: %r",
                envelope.message_type,
                envelope.message_id,
                exc,
            )
            if not isinstance(exc, Retryable) and is_disconnect(exc):
                await asyncio.sleep(REQUEUE_DELAY)
            await delivery.nack(requeue=True)
        else:
            logger.exception(
                "handler failed for %s %s; dead-lettering it", envelope.message_type, envelope.message_id
            )
            await delivery.nack(requeue=False)
    else:
        await delivery.ack()
