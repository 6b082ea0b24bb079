"""``/api/v1/inquiries`` (api.md §4.8, §5.7): questions executions ask humans, and the answers.

Answering validates the response against the inquiry's ``response_schema`` and, in the same
transaction, resumes the execution waiting on it (services.md §1.14, see :mod:`attune.inquiries`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from attune import inquiries
from attune.api.authz import require
from attune.api.deps import AUTH, ClaimsDep, RuntimeDep
from attune.api.pagination import PageRequest, fetch_page, make_page, page_a, page_c
from attune.api.schemas.common import Data, Page, Success
from attune.api.schemas.inquiries import (
    CreateInquiryRequest,
    InquiryResponse,
    InquirySummary,
    RespondRequest,
    UpdateInquiryRequest,
)
from attune.db.models import Execution, Inquiry
from attune.db.repos import inquiries as repo
from attune.db.types import utcnow
from attune.domain.enums import InquiryStatus
from attune.errors import BadRequest, NotFound

router = APIRouter(prefix="/api/v1", tags=["inquiries"], dependencies=AUTH)

SOURCE = "api"
#: Path spellings of ``/inquiries/status/{status}``: ``canceled`` (api.md) and ``cancelled``
#: (the enum value, used by web-ui.md) both mean cancelled.
STATUS_SEGMENTS = {
    "pending": InquiryStatus.PENDING,
    "responded": InquiryStatus.RESPONDED,
    "timeout": InquiryStatus.TIMEOUT,
    "canceled": InquiryStatus.CANCELLED,
    "cancelled": InquiryStatus.CANCELLED,
}


def _not_found(inquiry_id: int) -> NotFound:
    return NotFound(f"Inquiry with ID {inquiry_id} not found")


def _summary(row: Inquiry) -> InquirySummary:
    return InquirySummary(
        id=row.id,
        execution=row.execution,
        prompt=row.prompt,
        assigned_to=row.assigned_to,
        status=InquiryStatus(row.status),
        has_response=row.response is not None,
        timeout_at=row.timeout_at,
        created=row.created,
    )


def _response(row: Inquiry) -> InquiryResponse:
    return InquiryResponse(
        id=row.id,
        execution=row.execution,
        prompt=row.prompt,
        response_schema=row.response_schema,
        assigned_to=row.assigned_to,
        status=InquiryStatus(row.status),
        response=row.response,
        timeout_at=row.timeout_at,
        responded_at=row.responded_at,
        created=row.created,
        updated=row.updated,
    )


@router.get("/inquiries", dependencies=[require("inquiries", "read")])
async def list_inquiries(
    runtime: RuntimeDep,
    paging: Annotated[PageRequest, Depends(page_c)],
    status: Annotated[InquiryStatus | None, Query(description="Wins over execution")] = None,
    execution: Annotated[int | None, Query(description="Execution id (ignored with status)")] = None,
    assigned_to: Annotated[int | None, Query(description="Identity id of the assignee")] = None,
) -> Page[InquirySummary]:
    """Inquiries, newest first (``offset``/``limit`` paging)."""
    query = repo.list_query(
        status=status.value if status else None, execution=execution, assigned_to=assigned_to
    )
    async with runtime.db.session() as session:
        rows, total = await fetch_page(session, query, paging)
    return make_page([_summary(row) for row in rows], total, paging)


@router.post("/inquiries", status_code=201, dependencies=[require("inquiries", "create")])
async def create_inquiry(body: CreateInquiryRequest, runtime: RuntimeDep) -> Data[InquiryResponse]:
    """Create a pending inquiry for an execution (publishes nothing; the execution is untouched)."""
    async with runtime.db.transaction() as session:
        if await session.get(Execution, body.execution) is None:
            raise NotFound(f"Execution with ID {body.execution} not found")
        row = Inquiry(
            execution=body.execution,
            prompt=body.prompt,
            response_schema=body.response_schema,
            assigned_to=body.assigned_to,
            status=InquiryStatus.PENDING.value,
            timeout_at=body.timeout_at,
        )
        session.add(row)
        await session.flush()
        await session.refresh(row)
    return Data(data=_response(row), message="Inquiry created successfully")


@router.get("/inquiries/status/{status}", dependencies=[require("inquiries", "read")])
async def inquiries_by_status(
    status: str, runtime: RuntimeDep, paging: Annotated[PageRequest, Depends(page_a)]
) -> Page[InquirySummary]:
    """Inquiries in one status (``pending``, ``responded``, ``timeout``, ``canceled``)."""
    wanted = STATUS_SEGMENTS.get(status.lower())
    if wanted is None:
        raise BadRequest(f"Invalid inquiry status: {status}")
    async with runtime.db.session() as session:
        rows, total = await fetch_page(session, repo.by_status_query(wanted.value), paging)
    return make_page([_summary(row) for row in rows], total, paging)


@router.get("/inquiries/{id}", dependencies=[require("inquiries", "read")])
async def get_inquiry(id: int, runtime: RuntimeDep) -> Data[InquiryResponse]:
    """One inquiry."""
    async with runtime.db.session() as session:
        row = await repo.get(session, id)
        if row is None:
            raise _not_found(id)
    return Data(data=_response(row))


@router.put("/inquiries/{id}", dependencies=[require("inquiries", "update")])
async def update_inquiry(id: int, body: UpdateInquiryRequest, runtime: RuntimeDep) -> Data[InquiryResponse]:
    """Change ``status``, ``response`` or ``assigned_to`` as given, with none of the respond checks.

    ``responded_at`` is not set; a waiting execution is not resumed (use ``/respond`` for that).
    """
    async with runtime.db.transaction() as session:
        row = await repo.get(session, id)
        if row is None:
            raise _not_found(id)
        changes = {
            "status": body.status.value if body.status is not None else None,
            "response": body.response,
            "assigned_to": body.assigned_to,
        }
        changed = False
        for name, value in changes.items():
            if value is not None and getattr(row, name) != value:
                setattr(row, name, value)
                changed = True
        if changed:
            row.updated = utcnow()
            await session.flush()
    return Data(data=_response(row), message="Inquiry updated successfully")


@router.delete("/inquiries/{id}", dependencies=[require("inquiries", "delete")])
async def delete_inquiry(id: int, runtime: RuntimeDep) -> Success:
    """Delete an inquiry. An execution still waiting on it ends as ``cancelled``."""
    async with runtime.db.transaction() as session:
        row = await inquiries.lock_inquiry(session, id, lock=not runtime.db.is_sqlite)
        if row is None:
            raise _not_found(id)
        await inquiries.end_waiting(session, row, f"Inquiry {id} was deleted")
        await session.delete(row)
    return Success(message="Inquiry deleted successfully")


@router.post("/inquiries/{id}/respond", dependencies=[require("inquiries", "respond")])
async def respond_to_inquiry(
    id: int, body: RespondRequest, claims: ClaimsDep, runtime: RuntimeDep
) -> Data[InquiryResponse]:
    """Answer a pending inquiry (api.md §5.7) and resume the execution waiting on it.

    404 unknown; 400 not pending; 403 assigned to someone else; 400 timed out (the inquiry is
    then marked ``timeout`` and its execution ends as ``timeout``); 422 the answer does not
    satisfy ``response_schema``, naming the field.
    """
    expired = False
    async with runtime.db.transaction() as session:
        row = await inquiries.lock_inquiry(session, id, lock=not runtime.db.is_sqlite)
        if row is None:
            raise _not_found(id)
        inquiries.check_can_respond(row, claims.identity_id)
        if inquiries.is_expired(row, utcnow()):
            # Committed before the 400 below: a late answer settles the inquiry as timed out.
            expired = await inquiries.expire(session, row)
        else:
            inquiries.check_response(row, body.response)
            await inquiries.respond(
                session, row, body.response, responded_by=claims.identity_id, source_service=SOURCE
            )
            await session.flush()
            await session.refresh(row)
    if expired:
        raise BadRequest("Inquiry has timed out and can no longer be responded to")
    return Data(data=_response(row), message="Response submitted successfully")


@router.get("/executions/{execution_id}/inquiries", dependencies=[require("inquiries", "read")])
async def inquiries_of_execution(
    execution_id: int, runtime: RuntimeDep, paging: Annotated[PageRequest, Depends(page_a)]
) -> Page[InquirySummary]:
    """The inquiries of one execution, newest first; 404 when the execution does not exist."""
    async with runtime.db.session() as session:
        if await session.get(Execution, execution_id) is None:
            raise NotFound(f"Execution with ID {execution_id} not found")
        rows, total = await fetch_page(session, repo.by_execution_query(execution_id), paging)
    return make_page([_summary(row) for row in rows], total, paging)
