"""``make_envelope`` builds the envelope without validating it twice: the result is what validating
it from its own JSON gives, whatever the payload, the correlation id or the message type."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from attune.messaging.messages import (
    Envelope,
    ExecutionCompleted,
    MessageType,
    make_envelope,
)

CASES: list[tuple[MessageType, dict[str, Any]]] = [
    (MessageType.EVENT_CREATED, {"event_id": 1, "trigger_ref": "core.webhook", "payload": {"a": [1, 2]}}),
    (
        MessageType.EXECUTION_COMPLETED,
        {
            "execution_id": 3,
            "action_id": 4,
            "action_ref": "core.noop",
            "status": "Completed",
            "result": {"stdout": "hi"},
            "completed_at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2))),
            "extra": "kept",
        },
    ),
    (MessageType.EXECUTION_REQUESTED, {"execution_id": 5, "worker_id": 6, "action_ref": "core.noop"}),
]


@pytest.mark.parametrize(("kind", "payload"), CASES)
@pytest.mark.parametrize("correlation", [None, "canonical"])
def test_the_envelope_is_what_its_json_validates_to(
    kind: MessageType, payload: dict[str, Any], correlation: str | None
) -> None:
    cid = str(uuid.uuid4()) if correlation else None
    envelope = make_envelope(kind, payload, source_service="executor", correlation_id=cid)
    again = Envelope.from_json(envelope.to_json())
    assert again == envelope
    assert envelope.model_dump(mode="json") == again.model_dump(mode="json")
    assert envelope.correlation_id == (cid or envelope.message_id)
    assert envelope.timestamp.tzinfo is UTC
    assert envelope.headers.source_service == "executor"


def test_a_payload_model_is_dumped_to_json_types() -> None:
    model = ExecutionCompleted(
        execution_id=1,
        action_id=2,
        action_ref="core.noop",
        status="completed",  # type: ignore[arg-type]
        completed_at=datetime(2026, 1, 2, tzinfo=UTC),
    )
    envelope = make_envelope(MessageType.EXECUTION_COMPLETED, model, source_service="worker")
    assert envelope.payload["completed_at"] == "2026-01-02T00:00:00Z"
    assert envelope.payload["status"] == "completed"


def test_a_foreign_correlation_id_is_normalised_or_refused() -> None:
    cid = str(uuid.uuid4())
    envelope = make_envelope(
        MessageType.RULE_DISABLED,
        {"rule_id": 1, "rule_ref": "a.b", "trigger_ref": "c.d"},
        source_service="api",
        correlation_id=cid.upper(),
    )
    assert envelope.correlation_id == cid
    with pytest.raises(ValidationError):
        make_envelope(
            MessageType.RULE_DISABLED,
            {"rule_id": 1, "rule_ref": "a.b", "trigger_ref": "c.d"},
            source_service="api",
            correlation_id="not-a-uuid",
        )
