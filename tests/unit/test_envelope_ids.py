"""Envelope ids are normalised to the canonical UUID form whatever form a publisher sent."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

import pytest
from pydantic import ValidationError

from attune.messaging.messages import Envelope, MessageType, make_envelope


def _body(correlation_id: str) -> str:
    return json.dumps(
        {
            "message_id": str(uuid.uuid4()),
            "correlation_id": correlation_id,
            "message_type": MessageType.RULE_DISABLED.value,
            "payload": {},
        }
    )


def test_a_canonical_id_is_kept_as_sent() -> None:
    cid = str(uuid.uuid4())
    assert Envelope.from_json(_body(cid)).correlation_id == cid


@pytest.mark.parametrize("form", [str.upper, lambda s: "{" + s + "}", lambda s: s.replace("-", "")])
def test_other_uuid_forms_are_normalised(form: Callable[[str], str]) -> None:
    cid = str(uuid.uuid4())
    assert Envelope.from_json(_body(form(cid))).correlation_id == cid


@pytest.mark.parametrize(
    "bad", ["not-a-uuid", "", "0" * 35, str(uuid.uuid4()) + "0", str(uuid.uuid4()) + "\n"]
)
def test_a_malformed_id_is_refused(bad: str) -> None:
    with pytest.raises(ValidationError):
        Envelope.from_json(_body(bad))


def test_minted_ids_are_canonical_and_correlate() -> None:
    env = make_envelope(
        MessageType.RULE_DISABLED,
        {"rule_id": 1, "rule_ref": "p.r", "trigger_ref": "core.webhook"},
        source_service="test",
    )
    assert env.message_id == str(uuid.UUID(env.message_id))
    assert env.correlation_id == env.message_id
