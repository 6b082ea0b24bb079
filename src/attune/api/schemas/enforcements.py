"""Enforcement schemas (docs/api.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from attune.api.schemas.common import ApiModel
from attune.domain.enums import EnforcementCondition, EnforcementStatus


class EnforcementSummary(ApiModel):
    """An enforcement in a list."""

    id: int
    rule: int | None
    rule_ref: str
    trigger_ref: str
    event: int | None
    status: EnforcementStatus
    condition: EnforcementCondition
    created: datetime


class EnforcementResponse(EnforcementSummary):
    """One enforcement: the summary plus the resolved parameters and the event payload."""

    config: Any
    payload: dict[str, Any]
    conditions: Any
    resolved_at: datetime | None
    #: Why the rule firing produced no execution (a template over its limits), else null.
    error: str | None = None
