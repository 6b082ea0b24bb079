"""Schemas of the execution-control routes (Attune extensions)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from attune.api.schemas.common import ApiModel, RequestModel


class RerunExecutionRequest(RequestModel):
    """Optional body of ``POST /executions/{id}/rerun``."""

    parameters: dict[str, Any] | None = Field(
        default=None,
        description="Parameters to change: merged over the original ones (secret ones included) and "
        "validated against the action's param_schema",
    )


class ExecutionLogs(ApiModel):
    """Captured output so far; available while the action runs. Secret values read ``********``."""

    stdout: str
    stderr: str
    stdout_truncated: bool
    stderr_truncated: bool
