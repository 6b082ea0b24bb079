"""Pack test runs (``pack_test_execution``, append-only): recording and reading them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from attune.db.models import PackTestExecution
from attune.db.types import utcnow


def _execution_time(result: dict[str, Any]) -> datetime:
    text = result.get("executionTime")
    if isinstance(text, str):
        try:
            return datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            pass
    return utcnow()


async def record(
    session: AsyncSession, pack_id: int, result: dict[str, Any], reason: str
) -> PackTestExecution:
    """Store one PackTestResult (camelCase, docs/packs.md) with its trigger reason."""
    row = PackTestExecution(
        pack_id=pack_id,
        pack_version=str(result.get("packVersion") or "unknown")[:50],
        execution_time=_execution_time(result),
        trigger_reason=reason,
        total_tests=int(result.get("totalTests") or 0),
        passed=int(result.get("passed") or 0),
        failed=int(result.get("failed") or 0),
        skipped=int(result.get("skipped") or 0),
        pass_rate=max(0.0, min(1.0, float(result.get("passRate") or 0.0))),
        duration_ms=int(result.get("durationMs") or 0),
        result=result,
    )
    session.add(row)
    await session.flush()
    return row


def list_query(pack_id: int) -> sa.Select[PackTestExecution]:
    """A pack's runs, newest first."""
    return (
        sa.select(PackTestExecution)
        .where(PackTestExecution.pack_id == pack_id)
        .order_by(PackTestExecution.execution_time.desc(), PackTestExecution.id.desc())
    )


async def latest(session: AsyncSession, pack_id: int) -> PackTestExecution | None:
    result = await session.execute(list_query(pack_id).limit(1))
    return result.scalar_one_or_none()
