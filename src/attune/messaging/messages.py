"""The message envelope, the message types, their payloads and their routing.

Every message body is a UTF-8 JSON envelope (docs/operations.md). The payload of each type has a
model (docs/operations.md, with the fixes of docs/development.md: ``ExecutionCompleted`` always
carries the full payload and a lower-case status). ``make_envelope`` validates payloads so a
malformed message fails at the publisher instead of being dead-lettered at the consumer.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator, model_validator

from attune.domain.enums import ExecutionStatus
from attune.messaging import topology


class MessageType(StrEnum):
    """The message types carried on the bus (PascalCase on the wire)."""

    EVENT_CREATED = "EventCreated"
    ENFORCEMENT_CREATED = "EnforcementCreated"
    EXECUTION_REQUESTED = "ExecutionRequested"
    EXECUTION_STATUS_CHANGED = "ExecutionStatusChanged"
    EXECUTION_COMPLETED = "ExecutionCompleted"
    INQUIRY_CREATED = "InquiryCreated"
    INQUIRY_RESPONDED = "InquiryResponded"
    NOTIFICATION_CREATED = "NotificationCreated"
    RULE_CREATED = "RuleCreated"
    RULE_ENABLED = "RuleEnabled"
    RULE_DISABLED = "RuleDisabled"
    PACK_REGISTERED = "PackRegistered"
    # Attune extension: the database change notifications of docs/notifications.md, sent through the
    # outbox instead of PostgreSQL NOTIFY (routing key = the channel name).
    CHANGE_NOTIFICATION = "ChangeNotification"
    # Attune extension: many change notifications of one bulk write (workflow children) in one
    # message, delivered one by one by the notifier hub.
    CHANGE_NOTIFICATIONS = "ChangeNotifications"
    # Attune extension: ask the worker running an execution to kill it.
    EXECUTION_CANCEL = "ExecutionCancel"


_ROUTING: dict[MessageType, tuple[str, str]] = {
    MessageType.EVENT_CREATED: (topology.EVENTS_EXCHANGE, "event.created"),
    MessageType.ENFORCEMENT_CREATED: (topology.EXECUTIONS_EXCHANGE, "enforcement.created"),
    MessageType.EXECUTION_REQUESTED: (topology.EXECUTIONS_EXCHANGE, "execution.requested"),
    MessageType.EXECUTION_STATUS_CHANGED: (topology.EXECUTIONS_EXCHANGE, "execution.status.changed"),
    MessageType.EXECUTION_COMPLETED: (topology.EXECUTIONS_EXCHANGE, "execution.completed"),
    MessageType.INQUIRY_CREATED: (topology.EXECUTIONS_EXCHANGE, "inquiry.created"),
    MessageType.INQUIRY_RESPONDED: (topology.EXECUTIONS_EXCHANGE, "inquiry.responded"),
    MessageType.NOTIFICATION_CREATED: (topology.NOTIFICATIONS_EXCHANGE, "notification.created"),
    MessageType.RULE_CREATED: (topology.EVENTS_EXCHANGE, "rule.created"),
    MessageType.RULE_ENABLED: (topology.EVENTS_EXCHANGE, "rule.enabled"),
    MessageType.RULE_DISABLED: (topology.EVENTS_EXCHANGE, "rule.disabled"),
    MessageType.PACK_REGISTERED: (topology.EVENTS_EXCHANGE, "pack.registered"),
    # Only a default: ``change_notification_routing`` puts the channel in the routing key.
    MessageType.CHANGE_NOTIFICATION: (topology.NOTIFICATIONS_EXCHANGE, "change.notification"),
    MessageType.CHANGE_NOTIFICATIONS: (topology.NOTIFICATIONS_EXCHANGE, "change.notifications"),
    # Only a default: ``cancel_routing`` targets one worker.
    MessageType.EXECUTION_CANCEL: (topology.EXECUTIONS_EXCHANGE, "execution.cancel"),
}


def cancel_routing(worker_id: int) -> tuple[str, str]:
    """Where an ``ExecutionCancel`` for an execution running on ``worker_id`` goes."""
    return topology.EXECUTIONS_EXCHANGE, topology.worker_cancel_key(worker_id)


def routing_for(message_type: MessageType | str) -> tuple[str, str]:
    """Return ``(exchange, routing_key)`` for a message type (docs/operations.md)."""
    return _ROUTING[MessageType(message_type)]


def change_notification_routing(channel: str) -> tuple[str, str]:
    """``(exchange, routing_key)`` of a ``ChangeNotification`` on ``channel`` (docs/notifications.md)."""
    return topology.NOTIFICATIONS_EXCHANGE, channel


def dispatch_routing(worker_id: int) -> tuple[str, str]:
    """Return ``(exchange, routing_key)`` of an ``ExecutionRequested`` dispatched to one worker."""
    return topology.EXECUTIONS_EXCHANGE, topology.worker_dispatch_key(worker_id)


# The form str(uuid.UUID(...)) returns: lower-case hex, hyphenated 8-4-4-4-12.
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")


class Headers(BaseModel):
    """Envelope headers; unknown keys are kept (they are "flattened in" by other publishers)."""

    model_config = ConfigDict(extra="allow")

    retry_count: int = 0
    source_service: str | None = None
    trace_id: str | None = None


class Envelope(BaseModel):
    """The JSON object every bus message body holds (docs/operations.md)."""

    model_config = ConfigDict(frozen=True)

    message_id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    correlation_id: str
    message_type: MessageType
    version: str = "1.0"
    timestamp: datetime = Field(default_factory=lambda: datetime.now(UTC))
    headers: Headers = Field(default_factory=Headers)
    payload: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _default_ids(cls, data: Any) -> Any:
        # correlation_id defaults to message_id, so the message id must exist first.
        if isinstance(data, dict):
            data = dict(data)
            if data.get("message_id") is None:
                data["message_id"] = str(uuid.uuid4())
            if data.get("correlation_id") is None:
                data["correlation_id"] = data["message_id"]
            if data.get("version") is None:
                data["version"] = "1.0"
        return data

    @field_validator("message_id", "correlation_id")
    @classmethod
    def _uuid(cls, value: str) -> str:
        # Ids are nearly always canonical already (we mint them with str(uuid4())); matching that
        # form skips the UUID parse, which showed in the per-run profile (docs/performance.md).
        if _CANONICAL_UUID.match(value):
            return value
        return str(uuid.UUID(value))

    @field_validator("timestamp")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    @field_serializer("timestamp")
    def _rfc3339(self, value: datetime) -> str:
        return value.isoformat().replace("+00:00", "Z")

    @field_serializer("headers")
    def _compact_headers(self, value: Headers) -> dict[str, Any]:
        # Optional well-known headers are omitted rather than sent as null.
        dumped = value.model_dump(mode="json")
        return {k: v for k, v in dumped.items() if v is not None or k not in _OPTIONAL_HEADERS}

    def to_json(self) -> bytes:
        """Serialise to the UTF-8 JSON message body."""
        return self.model_dump_json().encode()

    @classmethod
    def from_json(cls, body: bytes | str) -> Envelope:
        """Parse a message body; raises ``pydantic.ValidationError`` (a ``ValueError``) if invalid."""
        return cls.model_validate_json(body)

    def payload_as(self, model: type[P]) -> P:
        """Validate the payload against a payload model (raises ``ValidationError``)."""
        return model.model_validate(self.payload)


_OPTIONAL_HEADERS = frozenset({"source_service", "trace_id"})


class Payload(BaseModel):
    """Base of the payload models; unknown fields are kept for forward compatibility."""

    model_config = ConfigDict(extra="allow")


P = TypeVar("P", bound=Payload)


class EventCreated(Payload):
    event_id: int
    trigger_id: int | None = None
    trigger_ref: str
    sensor_id: int | None = None
    sensor_ref: str | None = None
    payload: dict[str, Any] = Field(default_factory=dict)
    config: dict[str, Any] | None = None


class EnforcementCreated(Payload):
    enforcement_id: int
    rule_id: int | None = None
    rule_ref: str
    event_id: int | None = None
    trigger_ref: str
    payload: dict[str, Any] = Field(default_factory=dict)


class ExecutionRequested(Payload):
    """Sent to the scheduler (``execution.requested``)."""

    execution_id: int
    action_id: int | None = None
    action_ref: str
    parent_id: int | None = None
    enforcement_id: int | None = None
    config: dict[str, Any] | None = None


class ExecutionDispatch(Payload):
    """``ExecutionRequested`` sent by the scheduler to one worker (``execution.dispatch.worker.{id}``)."""

    execution_id: int
    worker_id: int
    action_ref: str
    config: dict[str, Any] | None = None


class ExecutionStatusChanged(Payload):
    execution_id: int
    action_ref: str
    previous_status: ExecutionStatus
    new_status: ExecutionStatus
    changed_at: datetime


class ExecutionCompleted(Payload):
    execution_id: int
    action_id: int
    action_ref: str
    status: ExecutionStatus
    result: Any = None
    completed_at: datetime
    #: Whether the execution is a task of a workflow run; None (older publishers): not known.
    workflow_child: bool | None = None

    @field_validator("status", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        # Older publishers sent "Completed"/"Failed" (docs/development.md).
        return value.lower() if isinstance(value, str) else value


class InquiryCreated(Payload):
    inquiry_id: int
    execution_id: int
    prompt: str
    response_schema: dict[str, Any] | None = None
    assigned_to: int | None = None
    timeout_at: datetime | None = None


class InquiryResponded(Payload):
    inquiry_id: int
    execution_id: int
    response: Any
    responded_by: int | None = None
    responded_at: datetime


class NotificationCreated(Payload):
    notification_id: int
    channel: str
    entity_type: str
    entity: str
    activity: str
    content: Any = None


class ChangeNotification(Payload):
    """A row change for the notifier and the SSE stream (docs/notifications.md client envelope).

    ``payload`` holds the channel's fields; execution payloads carry ids and statuses only,
    never the ``result``. ``entity_id`` is null for ``notification`` rows whose entity
    is not an integer id.
    """

    notification_type: str
    entity_type: str
    entity_id: int | None = None
    user_id: int | None = None
    payload: dict[str, Any] = Field(default_factory=dict)
    timestamp: datetime


class ChangeNotifications(Payload):
    """Change notifications of one bulk write, in order: the same as one ``ChangeNotification``
    each, at a fraction of the outbox rows and deliveries (docs/notifications.md)."""

    notifications: list[ChangeNotification]


class RuleCreated(Payload):
    rule_id: int
    rule_ref: str
    trigger_id: int | None = None
    trigger_ref: str
    action_id: int | None = None
    action_ref: str
    trigger_params: dict[str, Any] | None = None
    enabled: bool


class RuleEnabled(Payload):
    rule_id: int
    rule_ref: str
    trigger_ref: str
    trigger_params: dict[str, Any] | None = None


class RuleDisabled(Payload):
    rule_id: int
    rule_ref: str
    trigger_ref: str


class ExecutionCancel(Payload):
    execution_id: int
    worker_id: int


class PackRegistered(Payload):
    pack_id: int
    pack_ref: str
    version: str
    runtime_names: list[str] = Field(default_factory=list)


PAYLOAD_MODELS: Mapping[MessageType, type[Payload]] = {
    MessageType.EVENT_CREATED: EventCreated,
    MessageType.ENFORCEMENT_CREATED: EnforcementCreated,
    MessageType.EXECUTION_REQUESTED: ExecutionRequested,
    MessageType.EXECUTION_STATUS_CHANGED: ExecutionStatusChanged,
    MessageType.EXECUTION_COMPLETED: ExecutionCompleted,
    MessageType.INQUIRY_CREATED: InquiryCreated,
    MessageType.INQUIRY_RESPONDED: InquiryResponded,
    MessageType.NOTIFICATION_CREATED: NotificationCreated,
    MessageType.RULE_CREATED: RuleCreated,
    MessageType.RULE_ENABLED: RuleEnabled,
    MessageType.RULE_DISABLED: RuleDisabled,
    MessageType.PACK_REGISTERED: PackRegistered,
    MessageType.CHANGE_NOTIFICATION: ChangeNotification,
    MessageType.CHANGE_NOTIFICATIONS: ChangeNotifications,
    MessageType.EXECUTION_CANCEL: ExecutionCancel,
}


def payload_model(message_type: MessageType | str, payload: Mapping[str, Any]) -> type[Payload]:
    """The payload model for a type; a ``worker_id`` marks the dispatch form of ``ExecutionRequested``."""
    kind = MessageType(message_type)
    if kind is MessageType.EXECUTION_REQUESTED and payload.get("worker_id") is not None:
        return ExecutionDispatch
    return PAYLOAD_MODELS[kind]


def make_envelope(
    message_type: MessageType | str,
    payload: Payload | Mapping[str, Any],
    *,
    source_service: str,
    correlation_id: str | None = None,
) -> Envelope:
    """Build an envelope with a fresh id, validating the payload against its type's model.

    Raises ``pydantic.ValidationError`` when the payload does not fit the message type.
    """
    kind = MessageType(message_type)
    if isinstance(payload, Payload):
        model: Payload = payload
    else:
        model = payload_model(kind, payload).model_validate(dict(payload))
    headers = Headers(source_service=source_service)
    body = model.model_dump(mode="json")
    if correlation_id is not None and not _CANONICAL_UUID.match(correlation_id):
        # A foreign correlation id: let the envelope's validators normalise (or refuse) it.
        return Envelope.model_validate(
            {"correlation_id": correlation_id, "message_type": kind, "headers": headers, "payload": body}
        )
    # Every field is known valid here (a fresh uuid4, a canonical correlation id, the validated
    # payload dumped to JSON types, an aware UTC timestamp), so the envelope is built without a
    # second validation pass over the payload (docs/performance.md, "Lighter per-run CPU").
    message_id = str(uuid.uuid4())
    return Envelope.model_construct(
        message_id=message_id,
        correlation_id=message_id if correlation_id is None else correlation_id,
        message_type=kind,
        version="1.0",
        timestamp=datetime.now(UTC),
        headers=headers,
        payload=body,
    )
