"""Workflow schemas (docs/api.md workflow sync/validate) and workflow run state."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from attune.api.schemas.actions import FlatSchema
from attune.api.schemas.common import ApiModel, RequestModel
from attune.domain.enums import ExecutionStatus


class CreateWorkflow(RequestModel):
    """Body of ``POST /workflows``."""

    ref: str = Field(min_length=1, max_length=255, description="`pack.name`; also the companion action's ref")
    pack_ref: str = Field(min_length=1, max_length=255)
    label: str = Field(min_length=1, max_length=255)
    description: str | None = None
    version: str = Field(min_length=1, max_length=50)
    param_schema: FlatSchema = None
    out_schema: FlatSchema = None
    definition: Any = Field(description="The workflow document (docs/workflows.md); validated and normalised")
    tags: list[str] | None = None
    enabled: bool | None = None


class UpdateWorkflow(RequestModel):
    """Body of ``PUT /workflows/{ref}``; absent and null both mean "leave unchanged"."""

    label: str | None = Field(default=None, min_length=1, max_length=255)
    description: str | None = None
    version: str | None = Field(default=None, min_length=1, max_length=50)
    param_schema: FlatSchema = None
    out_schema: FlatSchema = None
    definition: Any = None
    tags: list[str] | None = None
    enabled: bool | None = None


class SaveWorkflowFile(RequestModel):
    """Body of ``PUT /workflows/{ref}/file`` and ``POST /packs/{pack_ref}/workflow-files``."""

    name: str = Field(min_length=1, max_length=255, description="File stem and ref suffix")
    label: str = Field(min_length=1, max_length=255)
    description: str | None = None
    version: str = Field(min_length=1, max_length=50)
    pack_ref: str = Field(min_length=1, max_length=255)
    definition: Any
    param_schema: FlatSchema = None
    out_schema: FlatSchema = None
    tags: list[str] | None = None
    enabled: bool | None = None


class WorkflowSummary(ApiModel):
    """A workflow definition in lists."""

    id: int
    ref: str
    pack_ref: str
    label: str
    description: str | None
    version: str
    tags: list[str]
    enabled: bool
    created: datetime
    updated: datetime


class WorkflowResponse(WorkflowSummary):
    """A full workflow definition."""

    pack: int
    param_schema: Any = None
    out_schema: Any = None
    definition: Any


class SyncedWorkflow(ApiModel):
    ref_name: str
    created: bool = Field(description="False means updated")
    workflow_def_id: int
    warnings: list[str]


class PackWorkflowSyncResponse(ApiModel):
    pack_ref: str
    loaded_count: int
    registered_count: int
    workflows: list[SyncedWorkflow]
    errors: list[str]


class PackWorkflowValidationResponse(ApiModel):
    pack_ref: str
    validated_count: int
    error_count: int
    errors: dict[str, list[str]]


class WorkflowTaskRun(ApiModel):
    """One child execution of a workflow task."""

    execution_id: int
    task_index: int | None
    status: ExecutionStatus
    retry_count: int = 0


class WorkflowTaskState(ApiModel):
    """A task of a workflow run and the status of its child executions."""

    name: str
    status: str = Field(description="pending, running, completed, failed, skipped, cancelled, …")
    executions: list[WorkflowTaskRun]


class WorkflowRunState(ApiModel):
    """``GET /executions/{id}/workflow``: the orchestration state of one workflow execution."""

    id: int
    execution: int
    workflow_def: int
    workflow_ref: str
    status: ExecutionStatus
    paused: bool
    pause_reason: str | None
    error_message: str | None
    current_tasks: list[str]
    completed_tasks: list[str]
    failed_tasks: list[str]
    skipped_tasks: list[str]
    variables: dict[str, Any]
    tasks: list[WorkflowTaskState]
    created: datetime
    updated: datetime
