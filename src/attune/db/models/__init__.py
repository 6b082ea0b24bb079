"""The SQLAlchemy data model (docs/development.md). Importing this package registers every table."""

from __future__ import annotations

from attune.db.models.automation import Action, Enforcement, Event, Rule, Sensor, Trigger
from attune.db.models.base import Base, CreatedMixin, IdMixin, TimestampMixin
from attune.db.models.executions import Execution, Inquiry, Notification, Worker
from attune.db.models.identity import Identity, PermissionAssignment, PermissionSet, Policy
from attune.db.models.outbox import OutboxMessage
from attune.db.models.packs import Pack, PackEnvironment, PackTestExecution, Runtime, RuntimeVersion
from attune.db.models.support import Artifact, ExecutionHistory, Key, QueueStats, WorkerHistory
from attune.db.models.workflows import WorkflowDefinition, WorkflowExecution, WorkflowItem

__all__ = [
    "Action",
    "Artifact",
    "Base",
    "CreatedMixin",
    "Enforcement",
    "Event",
    "Execution",
    "ExecutionHistory",
    "IdMixin",
    "Identity",
    "Inquiry",
    "Key",
    "Notification",
    "OutboxMessage",
    "Pack",
    "PackEnvironment",
    "PackTestExecution",
    "PermissionAssignment",
    "PermissionSet",
    "Policy",
    "QueueStats",
    "Rule",
    "Runtime",
    "RuntimeVersion",
    "Sensor",
    "TimestampMixin",
    "Trigger",
    "Worker",
    "WorkerHistory",
    "WorkflowDefinition",
    "WorkflowExecution",
    "WorkflowItem",
]
