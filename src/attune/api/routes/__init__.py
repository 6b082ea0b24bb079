"""Route modules, one per resource. ``ROUTERS`` is the order they are mounted in."""

from __future__ import annotations

from fastapi import APIRouter

from attune.api.routes import (
    actions,
    auth,
    enforcements,
    events,
    execution_control,
    executions,
    health,
    keys,
    packs,
    rules,
    runtimes,
    sensors,
    triggers,
    webhooks,
    workers,
)

# Static segments must be mounted before parameter segments of the same resource; each module
# declares its own static routes first, and modules are independent of each other's paths.
ROUTERS: list[APIRouter] = [
    health.router,
    auth.router,
    packs.router,
    actions.router,
    triggers.router,
    webhooks.router,
    sensors.router,
    rules.router,
    runtimes.router,
    keys.router,
    events.router,
    enforcements.router,
    executions.router,
    execution_control.router,
    workers.router,
]
