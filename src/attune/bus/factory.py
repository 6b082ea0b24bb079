"""Pick the bus implementation from the ``message_queue.url`` scheme."""

from __future__ import annotations

from urllib.parse import urlsplit

from attune.bus.base import Bus
from attune.bus.memory import MemoryBus
from attune.bus.rabbitmq import RabbitMQBus
from attune.errors import ConfigError


def create_bus(url: str, *, prefix: str = "") -> Bus:
    """``memory://`` → MemoryBus; ``amqp://``/``amqps://`` → RabbitMQBus; otherwise ConfigError."""
    scheme = urlsplit(url).scheme.lower()
    if scheme == "memory":
        return MemoryBus(prefix=prefix)
    if scheme in ("amqp", "amqps"):
        return RabbitMQBus(url, prefix=prefix)
    raise ConfigError(
        f"message_queue.url must start with memory://, amqp:// or amqps:// (got {scheme or url!r})"
    )
