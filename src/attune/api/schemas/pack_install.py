"""Schemas of pack installation, upgrades, registry search and pack tests (docs/api.md).

Pack test schemas use camelCase keys, as the API has always served them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from attune.api.schemas.common import ApiModel, RequestModel


class UpgradePack(RequestModel):
    """``POST /packs/{ref}/upgrade``: every field optional; the recorded install source is reused."""

    source: str | None = Field(
        default=None, description="Where to fetch the new version; default: where the pack came from"
    )
    version: str | None = Field(default=None, description="Registry version (default: the latest)")
    ref_spec: str | None = Field(default=None, description="Git branch, tag or commit")
    skip_tests: bool = False
    skip_deps: bool = False
    allow_downgrade: bool = Field(default=False, description="Accept a version older than the installed one")


class PackTestCase(ApiModel):
    omit_if_none = frozenset({"errorMessage", "stdout", "stderr"})

    name: str
    status: str
    durationMs: int
    errorMessage: str | None = None
    stdout: str | None = None
    stderr: str | None = None


class PackTestSuite(ApiModel):
    name: str
    runnerType: str
    total: int
    passed: int
    failed: int
    skipped: int
    durationMs: int
    testCases: list[PackTestCase]


class PackTestResult(ApiModel):
    packRef: str
    packVersion: str
    executionTime: datetime
    status: str = Field(description="passed, failed (any failure), skipped (all skipped) or partial")
    totalTests: int
    passed: int
    failed: int
    skipped: int
    passRate: float
    durationMs: int
    testSuites: list[PackTestSuite]


class PackTestExecution(ApiModel):
    id: int
    packId: int
    packVersion: str
    executionTime: datetime
    triggerReason: str = Field(description="install, update, manual or validation")
    totalTests: int
    passed: int
    failed: int
    skipped: int
    passRate: float
    durationMs: int
    result: PackTestResult
    created: datetime

    @classmethod
    def of(cls, row: Any) -> PackTestExecution:
        return cls(
            id=row.id,
            packId=row.pack_id,
            packVersion=row.pack_version,
            executionTime=row.execution_time,
            triggerReason=row.trigger_reason,
            totalTests=row.total_tests,
            passed=row.passed,
            failed=row.failed,
            skipped=row.skipped,
            passRate=float(row.pass_rate),
            durationMs=row.duration_ms,
            result=PackTestResult.model_validate(row.result),
            created=row.created,
        )


class RegistryHit(ApiModel):
    ref: str
    label: str | None = None
    version: str | None = None
    description: str | None = None
    author: str | None = None
    keywords: list[str] = Field(default_factory=list)
    registry: str
