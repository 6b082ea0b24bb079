"""Inquiry requests and answers, checked without the database (docs/inquiries.md).

An action asks a question by printing parsed output that holds ``__inquiry`` =
``{prompt, response_schema?, assigned_to?, timeout_seconds?}`` (in ``result.data`` or at the top
level of the result): :func:`parse_request` validates it. An answer must satisfy the inquiry's
``response_schema`` (:func:`check_response`) and come from its assignee while it is pending
(:func:`check_can_respond`). The use cases that act on them are in
:mod:`attune.operations.inquiries`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jsonschema.exceptions

from attune.db.models import Execution, Inquiry
from attune.domain.enums import ExecutionStatus, InquiryStatus
from attune.domain.params import schema_errors
from attune.errors import AttuneError, BadRequest, Forbidden, ValidationFailed

#: The key an action's parsed output uses to ask a question.
REQUEST_KEY = "__inquiry"
#: Result keys naming the inquiry and its answer (docs/packs.md "Inquiry resume").
ID_KEY = "__inquiry_id"
RESPONSE_KEY = "__inquiry_response"
PROMPT_MAX = 10000
#: The statuses of an execution that waits on an inquiry.
WAITING_FROM = (ExecutionStatus.RUNNING.value, ExecutionStatus.CANCELING.value)


class InvalidInquiryRequest(ValueError):
    """The ``__inquiry`` object an action printed cannot open an inquiry."""


@dataclass(frozen=True)
class InquiryRequest:
    """A validated ``__inquiry`` request; ``assigned_to`` is an identity id or a login."""

    prompt: str
    response_schema: dict[str, Any] | None = None
    assigned_to: int | str | None = None
    timeout_seconds: float | None = None


def requested(result: Any) -> Any:
    """The raw ``__inquiry`` value of a result (``result.data.__inquiry``, else top level), or None."""
    if not isinstance(result, Mapping):
        return None
    data = result.get("data")
    if isinstance(data, Mapping) and data.get(REQUEST_KEY) is not None:
        return data[REQUEST_KEY]
    return result.get(REQUEST_KEY)


def parse_request(raw: Any) -> InquiryRequest:
    """Validate a raw ``__inquiry`` value; raises :class:`InvalidInquiryRequest` naming the field."""
    if not isinstance(raw, Mapping):
        raise InvalidInquiryRequest("__inquiry must be an object")
    prompt = raw.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidInquiryRequest("prompt is required and must be a non-empty string")
    if len(prompt) > PROMPT_MAX:
        raise InvalidInquiryRequest(f"prompt is longer than {PROMPT_MAX} characters")
    schema = raw.get("response_schema")
    if schema is not None:
        if not isinstance(schema, Mapping):
            raise InvalidInquiryRequest("response_schema must be an object")
        try:
            schema_errors({}, _flat(schema))
        except (jsonschema.exceptions.SchemaError, re.error) as exc:
            raise InvalidInquiryRequest(f"response_schema is not a valid schema: {exc}") from exc
    assignee = raw.get("assigned_to")
    if assignee is not None and (
        isinstance(assignee, bool) or not isinstance(assignee, int | str) or assignee == ""
    ):
        raise InvalidInquiryRequest("assigned_to must be an identity id or a login")
    timeout = raw.get("timeout_seconds")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
    ):
        raise InvalidInquiryRequest("timeout_seconds must be a positive number")
    return InquiryRequest(
        prompt=prompt,
        response_schema=dict(schema) if schema is not None else None,
        assigned_to=assignee,
        timeout_seconds=float(timeout) if timeout is not None else None,
    )


def waits_on(execution: Execution | None, inquiry: Inquiry) -> bool:
    """True when ``execution`` is paused on ``inquiry``
    (held by :func:`attune.operations.inquiries.hold_if_requested`)."""
    return (
        execution is not None
        and execution.status in WAITING_FROM
        and execution.worker is None
        and isinstance(execution.result, Mapping)
        and execution.result.get(ID_KEY) == inquiry.id
    )


def _flat(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    """A response schema as ``schema_errors`` expects it.

    Flat maps (``{field: {type, required?}}``) and full object schemas are used as they are; a
    JSON Schema for a non-object answer (``{"type": "boolean"}``) is wrapped so it still applies.
    """
    if isinstance(schema.get("type"), str | list) and not (
        schema.get("type") == "object" and "properties" in schema
    ):
        return {"type": "object", "properties": {"response": dict(schema)}, "required": ["response"]}
    return schema


def response_errors(response: Any, response_schema: Any) -> list[str]:
    """Every violation of ``response_schema`` (flat format) by ``response``; [] when there is none."""
    if not isinstance(response_schema, Mapping) or not response_schema:
        return []
    schema = _flat(response_schema)
    instance = {"response": response} if schema is not response_schema else response
    try:
        return schema_errors(instance, schema)
    except (jsonschema.exceptions.SchemaError, re.error) as exc:
        detail = exc.message if isinstance(exc, jsonschema.exceptions.SchemaError) else str(exc)
        raise AttuneError(f"Invalid response schema: {detail}") from exc


def check_response(inquiry: Inquiry, response: Any) -> None:
    """Raise 422 ``Invalid response for inquiry <id>: <error> at <field>, …`` on a schema mismatch."""
    errors = response_errors(response, inquiry.response_schema)
    if errors:
        raise ValidationFailed(f"Invalid response for inquiry {inquiry.id}: {', '.join(errors)}")


def check_can_respond(inquiry: Inquiry, identity_id: int) -> None:
    """Only a pending inquiry, only by its assignee (when it has one)."""
    if inquiry.status != InquiryStatus.PENDING.value:
        raise BadRequest(
            f"Cannot respond to inquiry with status '{inquiry.status.capitalize()}'. "
            "Only pending inquiries can be responded to."
        )
    if inquiry.assigned_to is not None and inquiry.assigned_to != identity_id:
        raise Forbidden("You are not authorized to respond to this inquiry")


def is_expired(inquiry: Inquiry, now: datetime) -> bool:
    """True when the inquiry has a ``timeout_at`` that has passed."""
    return inquiry.timeout_at is not None and inquiry.timeout_at <= now
