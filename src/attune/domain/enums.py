"""Enumerations of the data model (docs/api.md), serialised as their lowercase values."""

from __future__ import annotations

from enum import StrEnum


class WorkerType(StrEnum):
    LOCAL = "local"
    REMOTE = "remote"
    CONTAINER = "container"


class WorkerRole(StrEnum):
    ACTION = "action"
    SENSOR = "sensor"
    HYBRID = "hybrid"


class WorkerStatus(StrEnum):
    ACTIVE = "active"
    INACTIVE = "inactive"
    BUSY = "busy"
    ERROR = "error"


class EnforcementStatus(StrEnum):
    CREATED = "created"
    PROCESSED = "processed"
    DISABLED = "disabled"


class EnforcementCondition(StrEnum):
    ANY = "any"
    ALL = "all"


class ExecutionStatus(StrEnum):
    REQUESTED = "requested"
    SCHEDULING = "scheduling"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELING = "canceling"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"
    ABANDONED = "abandoned"
    #: Attune extension: a workflow that starts no new tasks until resumed (docs/workflows.md).
    PAUSED = "paused"


TERMINAL_EXECUTION_STATUSES = frozenset(
    {
        ExecutionStatus.COMPLETED,
        ExecutionStatus.FAILED,
        ExecutionStatus.CANCELLED,
        ExecutionStatus.TIMEOUT,
        ExecutionStatus.ABANDONED,
    }
)


class InquiryStatus(StrEnum):
    PENDING = "pending"
    RESPONDED = "responded"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"


class PolicyMethod(StrEnum):
    CANCEL = "cancel"
    ENQUEUE = "enqueue"


class OwnerType(StrEnum):
    SYSTEM = "system"
    IDENTITY = "identity"
    PACK = "pack"
    ACTION = "action"
    SENSOR = "sensor"


class NotificationState(StrEnum):
    CREATED = "created"
    QUEUED = "queued"
    PROCESSING = "processing"
    ERROR = "error"


class ArtifactType(StrEnum):
    FILE_BINARY = "file_binary"
    FILE_DATATABLE = "file_datatable"
    FILE_IMAGE = "file_image"
    FILE_TEXT = "file_text"
    OTHER = "other"
    PROGRESS = "progress"
    URL = "url"


class ArtifactRetention(StrEnum):
    VERSIONS = "versions"
    DAYS = "days"
    HOURS = "hours"
    MINUTES = "minutes"


class PackEnvironmentStatus(StrEnum):
    PENDING = "pending"
    INSTALLING = "installing"
    READY = "ready"
    FAILED = "failed"
    OUTDATED = "outdated"


class ParameterDelivery(StrEnum):
    STDIN = "stdin"
    FILE = "file"


class ParameterFormat(StrEnum):
    DOTENV = "dotenv"
    JSON = "json"
    YAML = "yaml"


class OutputFormat(StrEnum):
    TEXT = "text"
    JSON = "json"
    YAML = "yaml"
    JSONL = "jsonl"


class TestTriggerReason(StrEnum):
    INSTALL = "install"
    UPDATE = "update"
    MANUAL = "manual"
    VALIDATION = "validation"


def values(enum: type[StrEnum]) -> tuple[str, ...]:
    """The serialised values of an enum, in declaration order."""
    return tuple(member.value for member in enum)
