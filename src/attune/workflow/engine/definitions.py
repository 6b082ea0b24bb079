"""The stored row of a parsed workflow definition (docs/workflows.md)."""

from __future__ import annotations

from attune.db.repos.workflows import DefinitionValues
from attune.workflow.spec import WorkflowSpec, to_document


def definition_values(spec: WorkflowSpec, *, enabled: bool = True) -> DefinitionValues:
    """The row values of a parsed workflow (docs/workflows.md): the normalised document and schemas."""
    return DefinitionValues(
        label=spec.label,
        description=spec.description,
        version=spec.version,
        param_schema=spec.parameters,
        out_schema=spec.output,
        definition=to_document(spec),
        tags=list(spec.tags),
        enabled=enabled,
    )
