"""Runs several services in one task group; one failing stops the others."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from attune.platform import Platform
from attune.services.base import Service

log = logging.getLogger(__name__)


async def run_services(platform: Platform, services: Sequence[Service], stop: asyncio.Event) -> None:
    """Run ``services`` until ``stop`` is set or one of them fails (then the rest are stopped)."""

    async def guarded(service: Service) -> None:
        try:
            await service.run(platform, stop)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("service %s failed; stopping the process", service.name)
            stop.set()
            raise
        finally:
            log.info("service %s stopped", service.name)

    async with asyncio.TaskGroup() as group:
        for service in services:
            group.create_task(guarded(service), name=f"service-{service.name}")
