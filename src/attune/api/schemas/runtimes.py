"""Runtime schemas (an Attune extension documented in the route module)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from attune.api.schemas.common import ApiModel, RequestModel


class CreateRuntime(RequestModel):
    """``POST /runtimes``."""

    ref: str = Field(min_length=1, max_length=255, description="`pack.name`, lowercase, e.g. `mypack.python`")
    pack_ref: str = Field(min_length=1, max_length=255, description="The owning pack; it must exist")
    name: str = Field(min_length=1, max_length=255, description="Display name, e.g. `Python`")
    description: str | None = None
    distributions: dict[str, Any] = Field(
        default_factory=dict, description="Verification metadata (`verification.commands`, …)"
    )
    installation: dict[str, Any] | None = None
    execution_config: dict[str, Any] = Field(
        default_factory=dict, description="Interpreter, environment, dependencies; `{}` means native"
    )


class UpdateRuntime(RequestModel):
    """``PUT /runtimes/{ref}``: absent and null both leave a field unchanged."""

    description: str | None = None
    name: str | None = Field(default=None, min_length=1, max_length=255)
    distributions: dict[str, Any] | None = None
    installation: dict[str, Any] | None = None
    execution_config: dict[str, Any] | None = None


class RuntimeVersionResponse(ApiModel):
    id: int
    version: str
    is_default: bool
    available: bool
    verified_at: datetime | None
    execution_config: dict[str, Any]
    meta: dict[str, Any]


class RuntimeSummary(ApiModel):
    id: int
    ref: str
    pack: int | None
    pack_ref: str | None
    name: str
    description: str | None
    distributions: dict[str, Any]
    installation: Any | None
    created: datetime
    updated: datetime


class RuntimeResponse(RuntimeSummary):
    execution_config: dict[str, Any]
    versions: list[RuntimeVersionResponse]
