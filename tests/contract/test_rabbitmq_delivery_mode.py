"""RabbitMQ only: which messages the broker keeps across a restart (docs/operations.md, "Guarantees").

Every message is persistent (AMQP delivery mode 2), the status changes included, whether
published one by one or as a batch.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import aio_pika
import pytest

from attune.bus.rabbitmq import RabbitMQBus
from attune.messaging import topology
from attune.messaging.messages import MessageType, make_envelope, routing_for
from tests.conftest import require_rabbitmq
from tests.contract.conftest import BUS_AMQP_URL

pytestmark = pytest.mark.rabbitmq


@pytest.fixture
async def prefixed() -> AsyncIterator[tuple[RabbitMQBus, str]]:
    require_rabbitmq()
    prefix = f"test-{uuid.uuid4().hex[:10]}."
    bus = RabbitMQBus(BUS_AMQP_URL, prefix=prefix)
    await bus.start()
    try:
        yield bus, prefix
    finally:
        await bus.delete_declared()
        await bus.close()


async def _delivery_mode(prefix: str, queue: str) -> int | None:
    connection = await aio_pika.connect(BUS_AMQP_URL)
    async with connection:
        channel = await connection.channel()
        amqp_queue = await channel.get_queue(prefix + queue, ensure=True)
        message = await amqp_queue.get(fail=True, timeout=5)
        await message.ack()
        return int(message.delivery_mode) if message.delivery_mode is not None else None


async def test_every_message_of_a_batch_is_persistent(
    prefixed: tuple[RabbitMQBus, str],
) -> None:
    bus, prefix = prefixed
    status_queue, events_queue = topology.EXECUTION_STATUS_QUEUE, topology.EXECUTOR_EVENTS_QUEUE
    for spec in (status_queue, events_queue):
        await bus.declare_queue(spec)
    changed = make_envelope(
        MessageType.EXECUTION_STATUS_CHANGED,
        {
            "execution_id": 1,
            "action_ref": "core.noop",
            "previous_status": "scheduled",
            "new_status": "running",
            "changed_at": "2026-12-06T20:00:00Z",
        },
        source_service="worker",
    )
    created = make_envelope(
        MessageType.EVENT_CREATED,
        {"event_id": 1, "trigger_ref": "core.webhook", "payload": {}},
        source_service="api",
    )

    outcomes = await bus.publish_many(
        [
            (*routing_for(MessageType.EXECUTION_STATUS_CHANGED), changed),
            (*routing_for(MessageType.EVENT_CREATED), created),
        ]
    )

    assert outcomes == [None, None]
    assert await _delivery_mode(prefix, status_queue.name) == 2
    assert await _delivery_mode(prefix, events_queue.name) == 2
