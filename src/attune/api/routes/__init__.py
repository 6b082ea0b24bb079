"""Route modules, one per resource. ``ROUTERS`` is the order they are mounted in."""

from __future__ import annotations

from fastapi import APIRouter

from attune.api.routes import (
    actions,
    analytics,
    auth,
    enforcements,
    events,
    execution_control,
    executions,
    health,
    history,
    identities,
    inquiries,
    keys,
    notifications,
    pack_install,
    pack_operations,
    packs,
    permissions,
    policies,
    rules,
    runtimes,
    sensors,
    triggers,
    webhooks,
    workers,
    workflow_validation,
    workflows,
)

# Static segments must be mounted before parameter segments of the same resource; each module
# declares its own static routes first, and modules are independent of each other's paths.
ROUTERS: list[APIRouter] = [
    health.router,
    auth.router,
    packs.router,
    pack_install.router,
    pack_operations.router,
    actions.router,
    triggers.router,
    webhooks.router,
    sensors.router,
    rules.router,
    runtimes.router,
    policies.router,
    keys.router,
    events.router,
    enforcements.router,
    notifications.router,  # before executions: /executions/stream is not an id
    executions.router,
    execution_control.router,
    workers.router,
    workflow_validation.router,  # before workflows: /workflows/validate is not a ref
    workflows.router,
    inquiries.router,
    history.router,
    analytics.router,
    identities.router,
    permissions.router,
]
