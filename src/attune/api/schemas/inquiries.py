"""Inquiry schemas (docs/api.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from attune.api.schemas.common import ApiModel, RequestModel
from attune.domain.enums import InquiryStatus


class CreateInquiryRequest(RequestModel):
    """``POST /inquiries``: ask a question about an existing execution."""

    execution: int
    prompt: str = Field(min_length=1, max_length=10000)
    response_schema: Any = Field(
        default=None, description="Flat schema the answer must satisfy (as an action's parameters)"
    )
    assigned_to: int | None = Field(default=None, description="Identity that may answer")
    timeout_at: datetime | None = None


class UpdateInquiryRequest(RequestModel):
    """``PUT /inquiries/{id}``: absent and null both mean "leave unchanged"; no checks apply."""

    status: InquiryStatus | None = None
    response: Any = None
    assigned_to: int | None = None


class RespondRequest(RequestModel):
    """``POST /inquiries/{id}/respond``; the ``response`` key is required (null is an answer)."""

    response: Any = Field(description="The answer; validated against the inquiry's response_schema")


class InquirySummary(ApiModel):
    """An inquiry in a list."""

    id: int
    execution: int
    prompt: str
    assigned_to: int | None
    status: InquiryStatus
    has_response: bool
    timeout_at: datetime | None
    created: datetime


class InquiryResponse(ApiModel):
    """One inquiry."""

    id: int
    execution: int
    prompt: str
    response_schema: Any
    assigned_to: int | None
    status: InquiryStatus
    response: Any
    timeout_at: datetime | None
    responded_at: datetime | None
    created: datetime
    updated: datetime
