"""``/api/v1/inquiries`` (docs/api.md): questions executions ask humans, and the answers.

Answering validates the response against the inquiry's ``response_schema`` and, in the same
transaction, resumes the execution waiting on it (docs/operations.md, see
:mod:`attune.operations.inquiries`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from sqlalchemy.ext.asyncio import AsyncSession

from attune.api.authz import Principal, PrincipalDep, check_execution, pack_of, require
from attune.api.deps import AUTH, PlatformDep
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
from attune.db.repos import executions, permissions
from attune.db.repos import inquiries as repo
from attune.db.types import utcnow
from attune.domain.enums import InquiryStatus
from attune.errors import BadRequest, Forbidden, NotFound, ValidationFailed
from attune.operations import inquiries

router = APIRouter(prefix="/api/v1", tags=["inquiries"], dependencies=AUTH)

SOURCE = "api"
#: Path spellings of ``/inquiries/status/{status}``: ``canceled`` (docs/api.md) and ``cancelled``
#: (the enum value, used by docs/web-ui.md) both mean cancelled.
STATUS_SEGMENTS = {
    "pending": InquiryStatus.PENDING,
    "responded": InquiryStatus.RESPONDED,
    "timeout": InquiryStatus.TIMEOUT,
    "canceled": InquiryStatus.CANCELLED,
    "cancelled": InquiryStatus.CANCELLED,
}


def visible(query: Any, principal: Principal) -> Any:
    """An inquiry query limited to what ``principal`` may read (owner: the execution's executor)."""
    return permissions.restrict(
        query,
        principal.scope("inquiries"),
        owner=executions.executor_of(Inquiry.execution),
        ref_of_pack=executions.action_ref_of(Inquiry.execution),
    )


async def _check(session: AsyncSession, principal: Principal, row: Inquiry, action: str) -> Execution | None:
    """403 unless ``principal`` may ``action`` the inquiry (judged by its execution)."""
    execution = await executions.get(session, row.execution)
    principal.check(
        "inquiries",
        action,
        pack=pack_of(execution.action_ref) if execution is not None else None,
        owner=execution.executor if execution is not None else None,
        what=f"{action} inquiry {row.id}",
    )
    return execution


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


@router.get("/inquiries", dependencies=[require("inquiries", "read", scoped=True)])
async def list_inquiries(
    platform: PlatformDep,
    principal: PrincipalDep,
    paging: Annotated[PageRequest, Depends(page_c)],
    status: Annotated[InquiryStatus | None, Query(description="Wins over execution")] = None,
    execution: Annotated[int | None, Query(description="Execution id (ignored with status)")] = None,
    assigned_to: Annotated[int | None, Query(description="Identity id of the assignee")] = None,
) -> Page[InquirySummary]:
    """Inquiries, newest first (``offset``/``limit`` paging)."""
    query = visible(
        repo.list_query(
            status=status.value if status else None, execution=execution, assigned_to=assigned_to
        ),
        principal,
    )
    async with platform.db.session() as session:
        rows, total = await fetch_page(session, query, paging)
    return make_page([_summary(row) for row in rows], total, paging)


@router.post("/inquiries", status_code=201, dependencies=[require("inquiries", "create", scoped=True)])
async def create_inquiry(
    body: CreateInquiryRequest, platform: PlatformDep, principal: PrincipalDep
) -> Data[InquiryResponse]:
    """Create a pending inquiry for an execution (publishes nothing; the execution is untouched)."""
    if body.assigned_to is not None and not principal.may("inquiries", "manage"):
        raise Forbidden("Only an administrator (or manage on inquiries) may assign an inquiry")
    async with platform.db.transaction() as session:
        execution = await executions.get(session, body.execution)
        if execution is None:
            raise NotFound(f"Execution with ID {body.execution} not found")
        check_execution(principal, execution, "read")
        row = Inquiry(
            execution=body.execution,
            prompt=body.prompt,
            response_schema=body.response_schema,
            assigned_to=body.assigned_to,
            status=InquiryStatus.PENDING.value,
            timeout_at=body.timeout_at,
        )
        await repo.add(session, row)
        await session.refresh(row)
    return Data(data=_response(row), message="Inquiry created successfully")


@router.get("/inquiries/status/{status}", dependencies=[require("inquiries", "read", scoped=True)])
async def inquiries_by_status(
    status: str,
    platform: PlatformDep,
    principal: PrincipalDep,
    paging: Annotated[PageRequest, Depends(page_a)],
) -> Page[InquirySummary]:
    """Inquiries in one status (``pending``, ``responded``, ``timeout``, ``canceled``)."""
    wanted = STATUS_SEGMENTS.get(status.lower())
    if wanted is None:
        raise BadRequest(f"Invalid inquiry status: {status}")
    async with platform.db.session() as session:
        rows, total = await fetch_page(
            session, visible(repo.by_status_query(wanted.value), principal), paging
        )
    return make_page([_summary(row) for row in rows], total, paging)


@router.get("/inquiries/{id}", dependencies=[require("inquiries", "read", scoped=True)])
async def get_inquiry(id: int, platform: PlatformDep, principal: PrincipalDep) -> Data[InquiryResponse]:
    """One inquiry."""
    async with platform.db.session() as session:
        row = await repo.get(session, id)
        if row is None:
            raise _not_found(id)
        await _check(session, principal, row, "read")
    return Data(data=_response(row))


@router.put("/inquiries/{id}", dependencies=[require("inquiries", "manage", scoped=True)])
async def update_inquiry(
    id: int, body: UpdateInquiryRequest, platform: PlatformDep, principal: PrincipalDep
) -> Data[InquiryResponse]:
    """Reassign an inquiry (``assigned_to``): administrators or ``manage`` on inquiries only.

    ``status`` and ``response`` never change here (422 when they would): an answer goes through
    ``POST /inquiries/{id}/respond`` (checked against ``response_schema``, resumes the execution)
    and an unanswered inquiry ends by its timeout, so no execution waits forever on an inquiry
    marked answered (docs/inquiries.md).
    """
    async with platform.db.transaction() as session:
        row = await repo.get(session, id)
        if row is None:
            raise _not_found(id)
        await _check(session, principal, row, "manage")
        if body.status is not None and body.status.value != row.status:
            raise ValidationFailed(
                "status cannot be changed with PUT: answer through POST /api/v1/inquiries/{id}/respond"
            )
        if body.response is not None and body.response != row.response:
            raise ValidationFailed(
                "response cannot be changed with PUT: answer through POST /api/v1/inquiries/{id}/respond"
            )
        if body.assigned_to is not None and row.assigned_to != body.assigned_to:
            row.assigned_to = body.assigned_to
            row.updated = utcnow()
            await session.flush()
    return Data(data=_response(row), message="Inquiry updated successfully")


@router.delete("/inquiries/{id}", dependencies=[require("inquiries", "delete", scoped=True)])
async def delete_inquiry(id: int, platform: PlatformDep, principal: PrincipalDep) -> Success:
    """Delete an inquiry. An execution still waiting on it ends as ``cancelled``."""
    async with platform.db.transaction() as session:
        row = await repo.get_locked(session, id)
        if row is None:
            raise _not_found(id)
        await _check(session, principal, row, "delete")
        await inquiries.delete(session, row)
    return Success(message="Inquiry deleted successfully")


@router.post("/inquiries/{id}/respond", dependencies=[require("inquiries", "respond", scoped=True)])
async def respond_to_inquiry(
    id: int, body: RespondRequest, principal: PrincipalDep, platform: PlatformDep
) -> Data[InquiryResponse]:
    """Answer a pending inquiry (docs/api.md) and resume the execution waiting on it.

    404 unknown; 400 not pending; 403 assigned to someone else; 400 timed out (the inquiry is
    then marked ``timeout`` and its execution ends as ``timeout``); 422 the answer does not
    satisfy ``response_schema``, naming the field.
    """
    async with platform.db.transaction() as session:
        row = await repo.get_locked(session, id)
        if row is None:
            raise _not_found(id)
        await _check(session, principal, row, "respond")
        if principal.execution is not None and row.execution in await executions.lineage(
            session, principal.execution.execution_id
        ):
            # An action must not approve its own question (nor one of a workflow it runs in).
            raise Forbidden("An execution cannot respond to its own inquiries or its ancestors'")
        responder = principal.identity_id if principal.identity_id is not None else 0
        answered = await inquiries.answer(
            session,
            row,
            body.response,
            responded_by=responder,
            source_service=SOURCE,
            now=platform.clock.now(),
        )
    if not answered:
        # Committed before this 400: a late answer settles the inquiry as timed out.
        raise BadRequest("Inquiry has timed out and can no longer be responded to")
    return Data(data=_response(row), message="Response submitted successfully")


@router.get("/executions/{execution_id}/inquiries", dependencies=[require("inquiries", "read", scoped=True)])
async def inquiries_of_execution(
    execution_id: int,
    platform: PlatformDep,
    principal: PrincipalDep,
    paging: Annotated[PageRequest, Depends(page_a)],
) -> Page[InquirySummary]:
    """The inquiries of one execution, newest first; 404 when the execution does not exist."""
    async with platform.db.session() as session:
        execution = await executions.get(session, execution_id)
        if execution is None:
            raise NotFound(f"Execution with ID {execution_id} not found")
        principal.check(
            "inquiries",
            "read",
            pack=pack_of(execution.action_ref),
            owner=execution.executor,
            what=f"read the inquiries of execution {execution_id}",
        )
        rows, total = await fetch_page(session, repo.by_execution_query(execution_id), paging)
    return make_page([_summary(row) for row in rows], total, paging)
