"""History schemas (docs/api.md): one change of an execution or a worker."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from attune.api.schemas.common import ApiModel


class HistoryRecord(ApiModel):
    """A recorded INSERT, UPDATE or DELETE of an execution or worker row (docs/operations.md)."""

    time: datetime
    operation: Literal["INSERT", "UPDATE", "DELETE"]
    entity_id: int
    entity_ref: str | None
    changed_fields: list[str] = Field(description="The tracked fields that changed; empty for INSERT/DELETE")
    old_values: dict[str, Any] | None = Field(
        description="Prior values of the changed fields; null for INSERT"
    )
    new_values: dict[str, Any] | None = Field(
        description="New values (the inserted fields for INSERT); large values as digests; null for DELETE"
    )
