"""Execution schemas (docs/api.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from attune.api.schemas.common import ApiModel, RequestModel
from attune.domain.enums import ExecutionStatus


class CreateExecutionRequest(RequestModel):
    """``POST /executions/execute``: run an action by hand."""

    action_ref: str
    parameters: dict[str, Any] | None = Field(
        default=None, description="Literal values, validated against the action's param_schema"
    )
    env_vars: dict[str, str] | None = None


class WorkflowTask(ApiModel):
    """The workflow-task link of a workflow child execution (docs/packs.md)."""

    workflow_execution: int
    task_name: str
    task_index: int | None = None
    task_batch: int | None = None
    retry_count: int = 0
    max_retries: int = 0
    next_retry_at: datetime | None = None
    timeout_seconds: int | None = None
    timed_out: bool = False
    duration_ms: int | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None


class ExecutionSummary(ApiModel):
    """An execution in a list. ``rule_ref``/``trigger_ref`` are filled only by ``GET /executions``."""

    omit_if_none = frozenset({"workflow_task"})

    id: int
    action_ref: str
    status: ExecutionStatus
    parent: int | None
    enforcement: int | None
    rule_ref: str | None = None
    trigger_ref: str | None = None
    workflow_task: WorkflowTask | None = None
    original_execution: int | None = Field(
        default=None, description="Attune extension: the first execution of this retry chain"
    )
    retry_count: int = Field(default=0, description="Attune extension: 0 for a first attempt")
    created: datetime
    updated: datetime


class ExecutionResponse(ApiModel):
    """One execution. ``env_vars`` is never returned, and secret parameters in ``config`` are masked."""

    omit_if_none = frozenset({"workflow_task"})

    id: int
    action: int | None
    action_ref: str
    config: Any = Field(description="The parameters; values of secret parameters read `********`")
    parent: int | None
    enforcement: int | None
    executor: int | None
    status: ExecutionStatus
    result: Any
    workflow_task: WorkflowTask | None = None
    started_at: datetime | None = Field(default=None, description="Attune extension")
    original_execution: int | None = Field(
        default=None, description="Attune extension: the first execution of this retry chain"
    )
    retry_count: int = Field(
        default=0, description="Attune extension: 0 for a first attempt, 1 for the first retry…"
    )
    max_retries: int = Field(default=0, description="Attune extension: the retry budget of this chain")
    retry_reason: str | None = Field(
        default=None, description="Attune extension: why this attempt was started (retries and re-runs)"
    )
    worker: int | None = Field(default=None, description="Attune extension")
    created: datetime
    updated: datetime


class ExecutionStats(ApiModel):
    """Counts over every execution; ``pending`` = requested + scheduling + scheduled."""

    total: int
    completed: int
    failed: int
    running: int
    pending: int
    cancelled: int
    timeout: int
    abandoned: int
    paused: int = Field(default=0, description="Attune extension: workflows paused on request")
