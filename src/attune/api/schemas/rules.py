"""Rule schemas (docs/api.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from attune.api.schemas.common import ApiModel, RequestModel


class CreateRule(RequestModel):
    """Body of ``POST /rules``."""

    ref: str = Field(min_length=1, max_length=255, description="Lowercase `pack.name`")
    pack_ref: str = Field(min_length=1, max_length=255, description="The pack must exist")
    label: str = Field(min_length=1, max_length=255)
    description: str | None = Field(
        default=None, min_length=1, description='Attune extension: optional, stored as "" when absent'
    )
    action_ref: str = Field(min_length=1, max_length=255, description="The action must exist")
    trigger_ref: str = Field(min_length=1, max_length=255, description="The trigger must exist")
    conditions: Any = Field(default_factory=dict, description="Stored as given, not validated; null means {}")
    action_params: dict[str, Any] | None = Field(
        default_factory=dict,
        description="Validated against the action's param_schema; templates allowed; null means {}",
    )
    trigger_params: dict[str, Any] | None = Field(
        default_factory=dict,
        description="Validated against the trigger's param_schema; templates allowed; null means {}",
    )
    enabled: bool = True


class UpdateRule(RequestModel):
    """Body of ``PUT /rules/{ref}``; absent and null both mean "leave unchanged"."""

    label: str | None = Field(default=None, min_length=1, max_length=255)
    description: str | None = Field(default=None, min_length=1)
    conditions: Any = None
    action_params: dict[str, Any] | None = None
    trigger_params: dict[str, Any] | None = None
    enabled: bool | None = None


class RuleSummary(ApiModel):
    """A rule in lists."""

    id: int
    ref: str
    pack_ref: str
    label: str
    description: str
    action_ref: str
    trigger_ref: str
    action_params: Any
    trigger_params: Any
    enabled: bool
    created: datetime
    updated: datetime


class RuleResponse(RuleSummary):
    """A full rule; ``action``/``trigger`` become null once that entity is deleted."""

    pack: int
    action: int | None
    trigger: int | None
    conditions: Any
    is_adhoc: bool
