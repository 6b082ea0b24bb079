"""Schemas of the execution-control routes (Attune extensions)."""

from __future__ import annotations

from attune.api.schemas.common import ApiModel


class ExecutionLogs(ApiModel):
    """Captured output so far; available while the action runs. Secret values read ``********``."""

    stdout: str
    stderr: str
    stdout_truncated: bool
    stderr_truncated: bool
