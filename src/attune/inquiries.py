"""Human-in-the-loop inquiries: pause, answer, resume, expire (services.md §1.14, domain.md §4.5).

An action asks a question by printing parsed output that holds ``__inquiry`` =
``{prompt, response_schema?, assigned_to?, timeout_seconds?}`` (in ``result.data`` or at the top
level of the result). When the worker finishes such a run, :func:`hold_if_requested` keeps the
execution ``running`` but releases it from the worker (``worker = NULL``, so no worker slot is held
and the liveness monitor leaves it alone), records ``__inquiry_id`` in its result, inserts a
``pending`` inquiry and stages ``InquiryCreated`` — all in the worker's finishing transaction.

The execution is *waiting* on an inquiry while it is ``running``, has no worker and its result's
``__inquiry_id`` names that inquiry (:func:`waits_on`). The answer (:func:`respond`) completes it,
with the answer as ``result.data``; expiry (:func:`expire`) ends it as ``timeout``; cancelling or
deleting the inquiry ends it as ``cancelled``. Every such end goes through
:func:`attune.executor.completion.finish_execution`, which stages ``ExecutionCompleted`` so a
workflow waiting on the task advances.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jsonschema.exceptions
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from attune.bus.messages import MessageType
from attune.db.models import Execution, Identity, Inquiry
from attune.db.outbox import enqueue
from attune.db.types import utcnow
from attune.domain.enums import ExecutionStatus, InquiryStatus
from attune.domain.params import schema_errors
from attune.errors import AttuneError, BadRequest, Forbidden, ValidationFailed
from attune.executor.completion import finish_execution

log = logging.getLogger(__name__)

#: The key an action's parsed output uses to ask a question.
REQUEST_KEY = "__inquiry"
#: Result keys naming the inquiry and its answer (domain.md §3.5 "Inquiry resume").
ID_KEY = "__inquiry_id"
RESPONSE_KEY = "__inquiry_response"
PROMPT_MAX = 10000
_RUNNING = (ExecutionStatus.RUNNING.value,)
_WAITING_FROM = (ExecutionStatus.RUNNING.value, ExecutionStatus.CANCELING.value)


class InvalidInquiryRequest(ValueError):
    """The ``__inquiry`` object an action printed cannot open an inquiry."""


@dataclass(frozen=True)
class InquiryRequest:
    """A validated ``__inquiry`` request; ``assigned_to`` is an identity id or a login."""

    prompt: str
    response_schema: dict[str, Any] | None = None
    assigned_to: int | str | None = None
    timeout_seconds: float | None = None


# --------------------------------------------------------------------------- requests


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


async def resolve_assignee(session: AsyncSession, assignee: int | str | None) -> int | None:
    """The identity id of ``assignee`` (an id, a numeric string or a login); raises when unknown."""
    if assignee is None:
        return None
    if isinstance(assignee, str) and not assignee.isdigit():
        found = (
            await session.execute(sa.select(Identity.id).where(Identity.login == assignee))
        ).scalar_one_or_none()
        if found is None:
            raise InvalidInquiryRequest(f"assigned_to: no identity with login '{assignee}'")
        return int(found)
    identity_id = int(assignee)
    if await session.get(Identity, identity_id) is None:
        raise InvalidInquiryRequest(f"assigned_to: no identity with id {identity_id}")
    return identity_id


async def hold_if_requested(
    session: AsyncSession,
    execution: Execution,
    status: str,
    result: dict[str, Any],
    *,
    source_service: str,
) -> tuple[bool, str, dict[str, Any]]:
    """Called by the worker inside its finishing transaction, for an execution still ``running``.

    Returns ``(held, status, result)``. When a completed run asked a valid question, the inquiry is
    opened, the execution stays ``running`` without a worker and ``held`` is True: the caller
    stages nothing else. A malformed request turns the run into ``failed`` with an ``error``
    naming the problem; anything else passes through unchanged.
    """
    raw = requested(result)
    if status != ExecutionStatus.COMPLETED.value or raw is None:
        return False, status, result
    try:
        request = parse_request(raw)
        assignee = await resolve_assignee(session, request.assigned_to)
    except InvalidInquiryRequest as exc:
        failed = {**result, "succeeded": False, "error": f"Invalid inquiry request: {exc}"}
        return False, ExecutionStatus.FAILED.value, failed
    inquiry = await open_inquiry(
        session,
        execution,
        prompt=request.prompt,
        response_schema=request.response_schema,
        assigned_to=assignee,
        timeout_at=(
            utcnow() + timedelta(seconds=request.timeout_seconds)
            if request.timeout_seconds is not None
            else None
        ),
        source_service=source_service,
    )
    held = {**result, ID_KEY: inquiry.id}
    await session.execute(
        sa.update(Execution)
        .where(Execution.id == execution.id, Execution.status.in_(_RUNNING))
        .values(result=held, worker=None, updated=utcnow())
        .execution_options(synchronize_session=False)
    )
    execution.result, execution.worker = held, None
    log.info("execution %s waits on inquiry %s", execution.id, inquiry.id)
    return True, ExecutionStatus.RUNNING.value, held


async def open_inquiry(
    session: AsyncSession,
    execution: Execution,
    *,
    prompt: str,
    response_schema: dict[str, Any] | None,
    assigned_to: int | None,
    timeout_at: datetime | None,
    source_service: str,
) -> Inquiry:
    """Insert a ``pending`` inquiry for ``execution`` and stage ``InquiryCreated``."""
    inquiry = Inquiry(
        execution=execution.id,
        prompt=prompt,
        response_schema=response_schema,
        assigned_to=assigned_to,
        status=InquiryStatus.PENDING.value,
        timeout_at=timeout_at,
    )
    session.add(inquiry)
    await session.flush()
    enqueue(
        session,
        MessageType.INQUIRY_CREATED,
        {
            "inquiry_id": inquiry.id,
            "execution_id": execution.id,
            "prompt": prompt,
            "response_schema": response_schema,
            "assigned_to": assigned_to,
            "timeout_at": timeout_at,
        },
        source_service=source_service,
    )
    return inquiry


# --------------------------------------------------------------------------- answers


def waits_on(execution: Execution | None, inquiry: Inquiry) -> bool:
    """True when ``execution`` is paused on ``inquiry`` (held by :func:`hold_if_requested`)."""
    return (
        execution is not None
        and execution.status in _WAITING_FROM
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
    """§5.7 steps 2 and 3: only a pending inquiry, only by its assignee (when it has one)."""
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


async def respond(
    session: AsyncSession, inquiry: Inquiry, response: Any, *, responded_by: int, source_service: str
) -> bool:
    """Store the answer and resume the waiting execution (one transaction: the caller's).

    The inquiry becomes ``responded``; ``InquiryResponded`` is staged. A waiting execution is
    completed with ``result.data`` = the answer plus ``__inquiry_response``/``__inquiry_id``.
    An execution that does not wait on it (an inquiry created through the API) keeps its status;
    a finished one gets the two keys merged into its result. Returns True when work resumed.
    """
    now = utcnow()
    inquiry.status = InquiryStatus.RESPONDED.value
    inquiry.response = response
    inquiry.responded_at = now
    inquiry.updated = now
    enqueue(
        session,
        MessageType.INQUIRY_RESPONDED,
        {
            "inquiry_id": inquiry.id,
            "execution_id": inquiry.execution,
            "response": response,
            "responded_by": responded_by,
            "responded_at": now,
        },
        source_service=source_service,
    )
    execution = await _execution_for_update(session, inquiry.execution)
    if execution is None:
        return False
    base = dict(execution.result) if isinstance(execution.result, Mapping) else {}
    answered = {**base, RESPONSE_KEY: response, ID_KEY: inquiry.id}
    if waits_on(execution, inquiry):
        answered["data"] = response
        answered["succeeded"] = True
        return await _finish(
            session, execution, ExecutionStatus.COMPLETED, answered, from_statuses=_WAITING_FROM
        )
    if execution.status not in (ExecutionStatus.RUNNING.value, ExecutionStatus.CANCELING.value):
        execution.result = answered
    return False


# --------------------------------------------------------------------------- expiry and cancel


async def expire(session: AsyncSession, inquiry: Inquiry) -> bool:
    """``pending → timeout``; the waiting execution ends as ``timeout``. False if already settled."""
    if inquiry.status != InquiryStatus.PENDING.value:
        return False
    inquiry.status = InquiryStatus.TIMEOUT.value
    inquiry.updated = utcnow()
    execution = await _execution_for_update(session, inquiry.execution)
    if waits_on(execution, inquiry):
        assert execution is not None
        result = {
            **(execution.result or {}),
            "succeeded": False,
            "error": f"Inquiry {inquiry.id} timed out",
        }
        await _finish(session, execution, ExecutionStatus.TIMEOUT, result, from_statuses=_WAITING_FROM)
    log.info("inquiry %s timed out", inquiry.id)
    return True


async def end_waiting(session: AsyncSession, inquiry: Inquiry, reason: str) -> bool:
    """End the execution waiting on ``inquiry`` as ``cancelled`` with ``reason`` as its error.

    Used when a pending inquiry is deleted; the inquiry row itself is left to the caller.
    """
    execution = await _execution_for_update(session, inquiry.execution)
    if inquiry.status != InquiryStatus.PENDING.value or not waits_on(execution, inquiry):
        return False
    assert execution is not None
    result = {**(execution.result or {}), "succeeded": False, "error": reason}
    return await _finish(session, execution, ExecutionStatus.CANCELLED, result, from_statuses=_WAITING_FROM)


async def cancel_waiting(session: AsyncSession, execution: Execution) -> bool:
    """Cancel an execution that waits on an inquiry: the inquiry → ``cancelled``, the execution →
    ``cancelled`` (``ExecutionCompleted`` staged). False when it does not wait on one.
    """
    if execution.worker is not None or not isinstance(execution.result, Mapping):
        return False
    inquiry_id = execution.result.get(ID_KEY)
    if not isinstance(inquiry_id, int):
        return False
    inquiry = await session.get(Inquiry, inquiry_id)
    if inquiry is None or inquiry.status != InquiryStatus.PENDING.value or not waits_on(execution, inquiry):
        return False
    inquiry.status = InquiryStatus.CANCELLED.value
    inquiry.updated = utcnow()
    result = {**execution.result, "succeeded": False, "error": "Execution was cancelled"}
    return await _finish(session, execution, ExecutionStatus.CANCELLED, result, from_statuses=_WAITING_FROM)


async def expired_ids(session: AsyncSession, now: datetime, *, limit: int = 100) -> list[int]:
    """Ids of pending inquiries whose ``timeout_at`` has passed, oldest deadline first."""
    query = (
        sa.select(Inquiry.id)
        .where(
            Inquiry.status == InquiryStatus.PENDING.value,
            Inquiry.timeout_at.is_not(None),
            Inquiry.timeout_at <= now,
        )
        .order_by(Inquiry.timeout_at, Inquiry.id)
        .limit(limit)
    )
    return [int(value) for value in (await session.execute(query)).scalars()]


async def lock_inquiry(session: AsyncSession, inquiry_id: int, *, lock: bool) -> Inquiry | None:
    """Load an inquiry, row-locked on PostgreSQL (``lock``) so answer and expiry cannot race."""
    return await session.get(Inquiry, inquiry_id, with_for_update=lock, populate_existing=True)


async def _finish(
    session: AsyncSession,
    execution: Execution,
    status: ExecutionStatus,
    result: Any,
    *,
    from_statuses: tuple[str, ...],
) -> bool:
    # finish_execution writes with a bulk UPDATE and then sets the attributes; detaching first
    # keeps the unit of work from writing (and auditing) the same transition a second time.
    if execution in session:
        session.expunge(execution)
    return await finish_execution(session, execution, status, result, from_statuses=from_statuses)


async def _execution_for_update(session: AsyncSession, execution_id: int) -> Execution | None:
    bind = session.get_bind()
    lock = bind.dialect.name != "sqlite"
    return await session.get(Execution, execution_id, with_for_update=lock, populate_existing=True)
