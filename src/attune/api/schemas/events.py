"""Event and enforcement schemas (docs/api.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import AliasChoices, Field

from attune.api.schemas.common import ApiModel, RequestModel


class CreateEventRequest(RequestModel):
    """``POST /events``; ``trigger_type`` is accepted as an alias of ``trigger_ref``."""

    trigger_ref: str = Field(min_length=1, validation_alias=AliasChoices("trigger_ref", "trigger_type"))
    payload: Any = None
    config: Any = None
    trigger_instance_id: str | None = Field(
        default=None, description="`rule_<id>` binds the event to that rule when it exists"
    )


class EventSummary(ApiModel):
    """An event in a list: the payload is reduced to ``has_payload``."""

    id: int
    trigger: int | None
    trigger_ref: str
    source: int | None
    source_ref: str | None
    rule: int | None
    rule_ref: str | None
    has_payload: bool
    created: datetime


class EventResponse(ApiModel):
    """One event. Events are immutable, so there is no ``updated``."""

    id: int
    trigger: int | None
    trigger_ref: str
    config: Any
    payload: Any
    source: int | None
    source_ref: str | None
    rule: int | None
    rule_ref: str | None
    created: datetime
