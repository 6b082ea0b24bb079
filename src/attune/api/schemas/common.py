"""Envelopes (docs/api.md) and the base model for every wire schema."""

from __future__ import annotations

from typing import ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

T = TypeVar("T")


class ApiModel(BaseModel):
    """Wire schema base. Fields named in ``omit_if_none`` disappear when None (``T (o)``)."""

    model_config = ConfigDict(from_attributes=True, populate_by_name=True)
    omit_if_none: ClassVar[frozenset[str]] = frozenset()

    # No return annotation on purpose: pydantic would otherwise document every response as ``{}``.
    @model_serializer(mode="wrap")
    def _omit(self, handler: SerializerFunctionWrapHandler):  # type: ignore[no-untyped-def]
        data = handler(self)
        if self.omit_if_none and isinstance(data, dict):
            for key in self.omit_if_none:
                if data.get(key) is None:
                    data.pop(key, None)
        return data


class RequestModel(BaseModel):
    """Request body base: unknown keys are ignored (docs/api.md)."""

    model_config = ConfigDict(extra="ignore")


class Data(ApiModel, Generic[T]):
    """``{"data": T, "message"?: string}``"""

    omit_if_none = frozenset({"message"})
    data: T
    message: str | None = None


class Pagination(ApiModel):
    page: int
    page_size: int
    total_items: int
    total_pages: int
    has_next: bool = Field(description="Attune extension: another page follows")
    has_previous: bool = Field(description="Attune extension: a page precedes this one")


class Page(ApiModel, Generic[T]):
    """``{"data": [T], "pagination": {...}}``"""

    data: list[T]
    pagination: Pagination


class Success(ApiModel):
    """``{"success": true, "message": string}`` — every DELETE."""

    success: bool = True
    message: str


class ErrorBody(ApiModel):
    """The standard error body (docs/api.md)."""

    error: str
    code: str
