"""Trigger schemas (docs/api.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from attune.api.schemas.actions import FlatSchema
from attune.api.schemas.common import ApiModel, RequestModel


class CreateTrigger(RequestModel):
    """Body of ``POST /triggers``."""

    ref: str = Field(min_length=1, max_length=255, description="Lowercase `pack.name`")
    pack_ref: str | None = Field(
        default=None, min_length=1, max_length=255, description="When absent the trigger has no pack"
    )
    label: str = Field(min_length=1, max_length=255)
    description: str | None = None
    param_schema: FlatSchema = None
    out_schema: FlatSchema = None
    enabled: bool = True


class UpdateTrigger(RequestModel):
    """Body of ``PUT /triggers/{ref}``; absent and null both mean "leave unchanged"."""

    label: str | None = Field(default=None, min_length=1, max_length=255)
    description: str | None = None
    param_schema: FlatSchema = None
    out_schema: FlatSchema = None
    enabled: bool | None = None


class TriggerSummary(ApiModel):
    """A trigger in lists."""

    id: int
    ref: str
    pack_ref: str | None
    label: str
    description: str | None
    enabled: bool
    webhook_enabled: bool
    created: datetime
    updated: datetime


class TriggerResponse(TriggerSummary):
    """A full trigger; ``webhook_key`` is omitted when the trigger has none."""

    omit_if_none = frozenset({"webhook_key"})

    pack: int | None
    param_schema: Any
    out_schema: Any
    webhook_key: str | None = Field(default=None, description="Omitted when webhooks are disabled")
    is_adhoc: bool
