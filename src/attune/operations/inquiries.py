"""Inquiry use cases: pause an execution on a question, answer, expire, cancel (docs/inquiries.md).

An action asks a question by printing parsed output that holds ``__inquiry`` (checked by
:mod:`attune.operations.inquiry_requests`). When the worker finishes such a run,
:func:`hold_if_requested` keeps the execution ``running`` but releases it from the worker
(``worker = NULL``, so no worker slot is held and the liveness monitor leaves it alone), records
``__inquiry_id`` in its result, inserts a ``pending`` inquiry and stages ``InquiryCreated`` — all
in the worker's finishing transaction.

The execution is *waiting* on an inquiry while it is ``running``, has no worker and its result's
``__inquiry_id`` names that inquiry (``waits_on``). The answer (:func:`respond`) completes it,
with the answer as ``result.data``; expiry (:func:`expire`) ends it as ``timeout``; cancelling or
deleting the inquiry ends it as ``cancelled``. Every such end goes through
:func:`attune.operations.executions.finish_execution`, which stages ``ExecutionCompleted`` so a
workflow waiting on the task advances.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from attune.db.models import Execution, Inquiry
from attune.db.outbox import enqueue
from attune.db.repos import executions, identities
from attune.db.repos import inquiries as repo
from attune.db.types import utcnow
from attune.domain.enums import ExecutionStatus, InquiryStatus
from attune.messaging.messages import MessageType
from attune.operations.executions import finish_execution
from attune.operations.inquiry_requests import (
    ID_KEY,
    RESPONSE_KEY,
    WAITING_FROM,
    InvalidInquiryRequest,
    check_can_respond,
    check_response,
    is_expired,
    parse_request,
    requested,
    waits_on,
)

log = logging.getLogger(__name__)

_RUNNING = (ExecutionStatus.RUNNING.value,)


async def resolve_assignee(session: AsyncSession, assignee: int | str | None) -> int | None:
    """The identity id of ``assignee`` (an id, a numeric string or a login); raises when unknown."""
    if assignee is None:
        return None
    if isinstance(assignee, str) and not assignee.isdigit():
        found = await identities.by_login(session, assignee)
        if found is None:
            raise InvalidInquiryRequest(f"assigned_to: no identity with login '{assignee}'")
        return int(found.id)
    identity_id = int(assignee)
    if await identities.get(session, identity_id) is None:
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
    await executions.move(
        session, execution.id, from_statuses=_RUNNING, result=held, worker=None, updated=utcnow()
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
    await repo.add(session, inquiry)
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
    execution = await executions.get_locked(session, inquiry.execution, refresh=True)
    if execution is None:
        return False
    base = dict(execution.result) if isinstance(execution.result, Mapping) else {}
    answered = {**base, RESPONSE_KEY: response, ID_KEY: inquiry.id}
    if waits_on(execution, inquiry):
        answered["data"] = response
        answered["succeeded"] = True
        return await _finish(
            session, execution, ExecutionStatus.COMPLETED, answered, from_statuses=WAITING_FROM
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
    execution = await executions.get_locked(session, inquiry.execution, refresh=True)
    if waits_on(execution, inquiry):
        assert execution is not None
        result = {
            **(execution.result or {}),
            "succeeded": False,
            "error": f"Inquiry {inquiry.id} timed out",
        }
        await _finish(session, execution, ExecutionStatus.TIMEOUT, result, from_statuses=WAITING_FROM)
    log.info("inquiry %s timed out", inquiry.id)
    return True


async def end_waiting(session: AsyncSession, inquiry: Inquiry, reason: str) -> bool:
    """End the execution waiting on ``inquiry`` as ``cancelled`` with ``reason`` as its error.

    Used when a pending inquiry is deleted; the inquiry row itself is left to the caller.
    """
    execution = await executions.get_locked(session, inquiry.execution, refresh=True)
    if inquiry.status != InquiryStatus.PENDING.value or not waits_on(execution, inquiry):
        return False
    assert execution is not None
    result = {**(execution.result or {}), "succeeded": False, "error": reason}
    return await _finish(session, execution, ExecutionStatus.CANCELLED, result, from_statuses=WAITING_FROM)


async def cancel_waiting(session: AsyncSession, execution: Execution) -> bool:
    """Cancel an execution that waits on an inquiry: the inquiry → ``cancelled``, the execution →
    ``cancelled`` (``ExecutionCompleted`` staged). False when it does not wait on one.
    """
    if execution.worker is not None or not isinstance(execution.result, Mapping):
        return False
    inquiry_id = execution.result.get(ID_KEY)
    if not isinstance(inquiry_id, int):
        return False
    inquiry = await repo.get(session, inquiry_id)
    if inquiry is None or inquiry.status != InquiryStatus.PENDING.value or not waits_on(execution, inquiry):
        return False
    inquiry.status = InquiryStatus.CANCELLED.value
    inquiry.updated = utcnow()
    result = {**execution.result, "succeeded": False, "error": "Execution was cancelled"}
    return await _finish(session, execution, ExecutionStatus.CANCELLED, result, from_statuses=WAITING_FROM)


async def answer(
    session: AsyncSession,
    inquiry: Inquiry,
    response: Any,
    *,
    responded_by: int,
    source_service: str,
    now: datetime,
) -> bool:
    """Answer a locked inquiry (docs/inquiries.md): only a pending one, only by its assignee.

    A late answer settles the inquiry as timed out (the caller commits that, then reports it)
    and returns False; an answer that breaks ``response_schema`` raises 422; otherwise the answer
    is stored, the waiting execution resumes and True is returned.
    """
    check_can_respond(inquiry, responded_by)
    if is_expired(inquiry, now):
        await expire(session, inquiry)
        return False
    check_response(inquiry, response)
    await respond(session, inquiry, response, responded_by=responded_by, source_service=source_service)
    await session.flush()
    await session.refresh(inquiry)
    return True


async def expire_if_due(session: AsyncSession, inquiry_id: int, now: datetime) -> bool:
    """Lock the inquiry and time it out if it is pending past ``timeout_at`` at ``now``; True if it was."""
    inquiry = await repo.get_locked(session, inquiry_id)
    if inquiry is None or not is_expired(inquiry, now):
        return False
    return await expire(session, inquiry)


async def delete(session: AsyncSession, inquiry: Inquiry) -> None:
    """Delete a (locked) inquiry; an execution still waiting on it ends as ``cancelled``."""
    await end_waiting(session, inquiry, f"Inquiry {inquiry.id} was deleted")
    await repo.delete(session, inquiry)


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
