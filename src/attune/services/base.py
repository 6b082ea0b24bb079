"""The shape every service shares: a name and ``run(runtime, stop)``."""

from __future__ import annotations

import asyncio
from typing import Protocol

from attune.platform import Platform


class Service(Protocol):
    """A long-running part of Attune (api, executor, worker, sensor, notifier).

    ``run`` returns when ``stop`` is set (after a graceful shutdown) and raises on a fatal error.
    Services talk to each other only through the database and the bus.
    """

    name: str

    async def run(self, platform: Platform, stop: asyncio.Event) -> None: ...
