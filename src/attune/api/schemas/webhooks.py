"""Webhook schemas (api.md §4.11)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from attune.api.schemas.common import ApiModel


class WebhookRequest(BaseModel):
    """The raw JSON envelope a webhook sender posts. ``payload`` is required (it may be null)."""

    model_config = ConfigDict(extra="ignore")

    payload: Any
    headers: Any = None
    source_ip: str | None = None
    user_agent: str | None = None


class WebhookReceiverResponse(ApiModel):
    """What the receiver answers once the event exists."""

    event_id: int
    trigger_ref: str
    received_at: datetime
    message: str = "Webhook received successfully"
