"""Exchanges and queues of the message bus (docs/operations.md).

Declarations are data; each bus implementation turns them into broker objects. The
dead-letter exchange is a fanout (docs/development.md: a direct DLX never routed anything), and
``attune.events.queue`` is not declared because nothing consumes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

EVENTS_EXCHANGE = "attune.events"
EXECUTIONS_EXCHANGE = "attune.executions"
NOTIFICATIONS_EXCHANGE = "attune.notifications"
DLX_EXCHANGE = "attune.dlx"

# An unconsumed dispatch is dead-lettered after five minutes so the executor can fail it.
WORKER_EXECUTION_TTL_MS = 300_000


class ExchangeType(StrEnum):
    """AMQP exchange types the platform uses."""

    TOPIC = "topic"
    FANOUT = "fanout"


@dataclass(frozen=True, slots=True)
class ExchangeSpec:
    """A durable exchange."""

    name: str
    type: ExchangeType


@dataclass(frozen=True, slots=True)
class QueueSpec:
    """A durable queue with its bindings.

    ``bindings`` pairs an exchange name with a routing-key pattern (AMQP topic syntax).
    ``dead_letter`` routes rejected and expired messages to ``attune.dlx``; ``ttl_ms`` sets
    a per-queue message TTL. ``exclusive`` makes a private queue of one process instead: not
    durable, usable only by the connection that declared it, deleted when its last consumer
    goes (a notifier hub's copy of a fanout exchange).
    """

    name: str
    bindings: tuple[tuple[str, str], ...]
    dead_letter: bool = False
    ttl_ms: int | None = None
    exclusive: bool = False


EXCHANGES: tuple[ExchangeSpec, ...] = (
    ExchangeSpec(EVENTS_EXCHANGE, ExchangeType.TOPIC),
    ExchangeSpec(EXECUTIONS_EXCHANGE, ExchangeType.TOPIC),
    ExchangeSpec(NOTIFICATIONS_EXCHANGE, ExchangeType.FANOUT),
    ExchangeSpec(DLX_EXCHANGE, ExchangeType.FANOUT),
)

EXECUTOR_EVENTS_QUEUE = QueueSpec(
    "attune.executor.events.queue", ((EVENTS_EXCHANGE, "event.created"),), dead_letter=True
)
ENFORCEMENTS_QUEUE = QueueSpec(
    "attune.enforcements.queue", ((EXECUTIONS_EXCHANGE, "enforcement.#"),), dead_letter=True
)
EXECUTION_REQUESTS_QUEUE = QueueSpec(
    "attune.execution.requests.queue", ((EXECUTIONS_EXCHANGE, "execution.requested"),), dead_letter=True
)
EXECUTION_STATUS_QUEUE = QueueSpec(
    "attune.execution.status.queue", ((EXECUTIONS_EXCHANGE, "execution.status.changed"),), dead_letter=True
)
EXECUTION_COMPLETED_QUEUE = QueueSpec(
    "attune.execution.completed.queue", ((EXECUTIONS_EXCHANGE, "execution.completed"),), dead_letter=True
)
INQUIRY_RESPONSES_QUEUE = QueueSpec(
    "attune.inquiry.responses.queue", ((EXECUTIONS_EXCHANGE, "inquiry.responded"),), dead_letter=True
)
RULES_LIFECYCLE_QUEUE = QueueSpec(
    "attune.rules.lifecycle.queue",
    (
        (EVENTS_EXCHANGE, "rule.created"),
        (EVENTS_EXCHANGE, "rule.enabled"),
        (EVENTS_EXCHANGE, "rule.disabled"),
    ),
)
DLX_QUEUE = QueueSpec("attune.dlx.queue", ((DLX_EXCHANGE, "#"),))

NAMED_QUEUES: tuple[QueueSpec, ...] = (
    EXECUTOR_EVENTS_QUEUE,
    ENFORCEMENTS_QUEUE,
    EXECUTION_REQUESTS_QUEUE,
    EXECUTION_STATUS_QUEUE,
    EXECUTION_COMPLETED_QUEUE,
    INQUIRY_RESPONSES_QUEUE,
    RULES_LIFECYCLE_QUEUE,
    DLX_QUEUE,
)

#: The named queues whose consumers exist today; every process declares them at start.
SHARED_QUEUES: tuple[QueueSpec, ...] = tuple(q for q in NAMED_QUEUES if q is not INQUIRY_RESPONSES_QUEUE)


def worker_dispatch_key(worker_id: int) -> str:
    """Routing key the scheduler uses to hand an execution to one worker."""
    return f"execution.dispatch.worker.{worker_id}"


def worker_execution_queue(worker_id: int) -> QueueSpec:
    """The queue one worker takes dispatched executions from (dead-lettered after the TTL)."""
    return QueueSpec(
        f"worker.{worker_id}.executions",
        ((EXECUTIONS_EXCHANGE, worker_dispatch_key(worker_id)),),
        dead_letter=True,
        ttl_ms=WORKER_EXECUTION_TTL_MS,
    )


def worker_cancel_key(worker_id: int) -> str:
    """Routing key of cancel requests for executions running on one worker."""
    return f"execution.cancel.worker.{worker_id}"


def worker_control_queue(worker_id: int) -> QueueSpec:
    """``worker.{id}.control``: cancel requests, kept apart so they never wait behind dispatches."""
    return QueueSpec(
        name=f"worker.{worker_id}.control",
        bindings=((EXECUTIONS_EXCHANGE, worker_cancel_key(worker_id)),),
    )


def worker_pack_queue(worker_id: int) -> QueueSpec:
    """The queue one worker receives ``PackRegistered`` on, to prepare pack environments."""
    return QueueSpec(f"worker.{worker_id}.packs", ((EVENTS_EXCHANGE, "pack.registered"),), dead_letter=True)


def private_queue_for(exchange: str, routing_key: str) -> QueueSpec | None:
    """The one worker's queue a message is addressed to (dispatch or cancel), else ``None``.

    The outbox relay declares it before re-sending such a message on a bus that forgets
    undeclared queues, so the message waits for its worker instead of being dropped.
    """
    if exchange != EXECUTIONS_EXCHANGE:
        return None
    prefix, _, worker = routing_key.rpartition(".")
    if not worker.isdigit():
        return None
    if prefix == "execution.dispatch.worker":
        return worker_execution_queue(int(worker))
    if prefix == "execution.cancel.worker":
        return worker_control_queue(int(worker))
    return None


def sensor_queue(sensor_ref: str, *, exchange: str = EVENTS_EXCHANGE) -> QueueSpec:
    """The rule-lifecycle queue of one standalone sensor process (e.g. the timer)."""
    keys = ("rule.created", "rule.enabled", "rule.disabled", "rule.deleted")
    return QueueSpec(f"sensor.{sensor_ref}", tuple((exchange, key) for key in keys))


def topic_matches(pattern: str, routing_key: str) -> bool:
    """AMQP topic matching: ``*`` is exactly one word, ``#`` zero or more words."""
    return _match(pattern.split("."), 0, routing_key.split("."), 0)


def _match(pattern: list[str], p: int, words: list[str], w: int) -> bool:
    while p < len(pattern):
        token = pattern[p]
        if token == "#":
            # Collapse runs of '#' and try every possible number of swallowed words.
            while p + 1 < len(pattern) and pattern[p + 1] == "#":
                p += 1
            if p + 1 == len(pattern):
                return True
            return any(_match(pattern, p + 1, words, i) for i in range(w, len(words) + 1))
        if w >= len(words) or (token != "*" and token != words[w]):
            return False
        p += 1
        w += 1
    return w == len(words)
