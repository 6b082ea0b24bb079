"""``POST /api/v1/workflows/validate``: check a workflow document without storing it.

The visual builder (docs/web-ui.md) shows these messages while a workflow is drawn: the same
parser and semantic checks that saving runs, so what the builder accepts, the server accepts.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import Field

from attune.api.authz import require
from attune.api.deps import AUTH, PlatformDep
from attune.api.schemas.common import ApiModel, Data, RequestModel
from attune.db.repos import actions
from attune.workflow.spec import WorkflowValidationError, parse_workflow, validate_workflow

router = APIRouter(prefix="/api/v1", tags=["workflows"], dependencies=AUTH)


class ValidateWorkflowRequest(RequestModel):
    definition: dict[str, Any] = Field(description="The workflow document (as saved by the builder)")
    ref: str | None = Field(default=None, max_length=255, description="Used when the document has none")


class WorkflowValidation(ApiModel):
    valid: bool
    errors: list[str]


@router.post("/workflows/validate", dependencies=[require("workflows", "read")])
async def validate_definition(
    body: ValidateWorkflowRequest, platform: PlatformDep
) -> Data[WorkflowValidation]:
    """Parse and validate the document; ``errors`` names the task and field of every problem."""
    doc = dict(body.definition)
    ref = str(doc.get("ref") or body.ref or "draft.workflow")
    doc.setdefault("ref", ref)
    try:
        spec = parse_workflow(doc, ref=ref, max_tasks=platform.settings.executor.workflow_max_tasks)
    except WorkflowValidationError as exc:
        return Data(data=WorkflowValidation(valid=False, errors=list(exc.errors)))
    async with platform.db.session() as session:
        known = await actions.all_refs(session)
    problems = validate_workflow(spec, known_actions=lambda r: r in known)
    return Data(data=WorkflowValidation(valid=not problems, errors=problems))
