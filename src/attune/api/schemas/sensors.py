"""Sensor schemas (docs/api.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from attune.api.schemas.actions import FlatSchema
from attune.api.schemas.common import ApiModel, RequestModel


class CreateSensor(RequestModel):
    """Body of ``POST /sensors``."""

    ref: str = Field(min_length=1, max_length=255, description="Lowercase `pack.name`")
    pack_ref: str = Field(min_length=1, max_length=255)
    label: str = Field(min_length=1, max_length=255)
    description: str = Field(min_length=1)
    entrypoint: str = Field(min_length=1, max_length=1024)
    runtime_ref: str = Field(min_length=1, max_length=255, description="The runtime must exist")
    trigger_ref: str = Field(min_length=1, max_length=255, description="The trigger must exist")
    param_schema: FlatSchema = None
    config: dict[str, Any] | None = None
    enabled: bool = True


class UpdateSensor(RequestModel):
    """Body of ``PUT /sensors/{ref}``; runtime, trigger and config cannot be changed."""

    label: str | None = Field(default=None, min_length=1, max_length=255)
    description: str | None = Field(default=None, min_length=1)
    entrypoint: str | None = Field(default=None, min_length=1, max_length=1024)
    param_schema: FlatSchema = None
    enabled: bool | None = None


class SensorSummary(ApiModel):
    """A sensor in lists."""

    id: int
    ref: str
    pack_ref: str | None
    label: str
    description: str
    trigger_ref: str
    enabled: bool
    created: datetime
    updated: datetime


class SensorResponse(SensorSummary):
    """A full sensor; ``config`` is never returned."""

    pack: int | None
    entrypoint: str
    runtime: int
    runtime_ref: str
    trigger: int
    param_schema: Any
