"""The four pagination families of docs/api.md, as FastAPI dependencies."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa
from fastapi import Query
from sqlalchemy.ext.asyncio import AsyncSession

from attune.api.schemas.common import Page, Pagination
from attune.db.repos import paging

T = TypeVar("T")


@dataclass(frozen=True)
class PageRequest:
    """A requested page. ``cap`` bounds the rows returned, not the echoed page size."""

    page: int
    page_size: int
    cap: int | None

    @property
    def offset(self) -> int:
        return max(self.page - 1, 0) * max(self.page_size, 0)

    @property
    def limit(self) -> int:
        if self.page < 1 or self.page_size <= 0:
            return 0
        return self.page_size if self.cap is None else min(self.page_size, self.cap)

    def pagination(self, total: int) -> Pagination:
        pages = math.ceil(total / self.page_size) if self.page_size > 0 else 0
        return Pagination(
            page=self.page,
            page_size=self.page_size,
            total_items=total,
            total_pages=pages,
            has_next=self.page >= 1 and self.page < pages,
            has_previous=self.page > 1 and pages > 0,
        )


async def page_a(
    page: int = Query(1, description="1-based page number"),
    page_size: int = Query(50, description="Items per page (at most 100 returned)"),
) -> PageRequest:
    """Family A: ``page`` / ``page_size`` (50), cap 100."""
    return PageRequest(page, page_size, 100)


async def page_b_executions(
    page: int = Query(1, description="1-based page number"),
    per_page: int = Query(20, description="Items per page (at most 100 returned)"),
) -> PageRequest:
    """Family B for executions: ``page`` / ``per_page`` (20), cap 100."""
    return PageRequest(page, per_page, 100)


async def page_b(
    page: int = Query(1, description="1-based page number"),
    per_page: int = Query(50, description="Items per page"),
) -> PageRequest:
    """Family B for events, enforcements and keys: ``per_page`` (50), no cap."""
    return PageRequest(page, per_page, None)


async def page_c(
    offset: int = Query(0, ge=0, description="Rows to skip"),
    limit: int = Query(50, description="Rows to return (max 500)"),
) -> PageRequest:
    """Family C (inquiries): ``offset`` / ``limit``; echoes page = offset/limit + 1."""
    limit = max(0, min(limit, 500))
    page = offset // limit + 1 if limit else 1
    return _OffsetPage(page, limit, 500, offset)


@dataclass(frozen=True)
class _OffsetPage(PageRequest):
    raw_offset: int = 0

    @property
    def offset(self) -> int:
        return self.raw_offset

    @property
    def limit(self) -> int:
        return self.page_size


async def page_h(
    page: int = Query(1, description="1-based page number"),
    page_size: int = Query(50, description="Items per page (at most 1000 returned)"),
) -> PageRequest:
    """Family H (history): ``page`` / ``page_size`` (50), cap 1000."""
    return PageRequest(page, page_size, 1000)


async def fetch_page(
    session: AsyncSession,
    query: sa.Select[Any],
    request: PageRequest,
) -> tuple[Sequence[Any], int]:
    """Run ``query`` (already filtered and ordered) for one page; return rows and the total."""
    return await paging.fetch_page(session, query, offset=request.offset, limit=request.limit)


def make_page(items: list[T], total: int, request: PageRequest) -> Page[T]:
    return Page[T](data=items, pagination=request.pagination(total))
