"""Bus fixtures for the contract tier: the same test bodies run over memory and RabbitMQ.

RabbitMQ tests use a fresh name prefix per test and delete what they declared. They skip when
the broker is unreachable, except under ``CI=true`` where that is a failure.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator
from typing import Protocol
from urllib.parse import urlsplit

import pytest

from attune.bus.base import Bus
from attune.bus.memory import MemoryBus
from attune.bus.rabbitmq import RabbitMQBus
from tests.conftest import require

# A failing test may leave handlers blocked; teardown cancels them after this long.
GRACE = 1.0
BUS_AMQP_URL = os.environ.get("ATTUNE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")


class ContractBus(Bus, Protocol):
    """The port plus the extras both implementations offer to tests."""

    async def publish_raw(self, exchange: str, routing_key: str, body: bytes) -> None: ...

    async def queue_depth(self, queue: str) -> int: ...

    async def delete_declared(self) -> None: ...


def _broker_reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5672), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(params=["memory", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)])
def bus_kind(request: pytest.FixtureRequest) -> str:
    """Which bus implementation a contract test runs against."""
    kind: str = request.param
    if kind == "rabbitmq":
        where = urlsplit(BUS_AMQP_URL).netloc.split("@")[-1]
        require(_broker_reachable(BUS_AMQP_URL), f"RabbitMQ is unreachable at {where}")
    return kind


@pytest.fixture
async def bus(bus_kind: str) -> AsyncIterator[ContractBus]:
    """A started bus whose names are private to this test."""
    prefix = f"test-{uuid.uuid4().hex[:10]}."
    instance: ContractBus = (
        MemoryBus(prefix=prefix, shutdown_grace=GRACE)
        if bus_kind == "memory"
        else RabbitMQBus(BUS_AMQP_URL, prefix=prefix, shutdown_grace=GRACE)
    )
    await instance.start()
    try:
        yield instance
    finally:
        await instance.delete_declared()
        await instance.close()
