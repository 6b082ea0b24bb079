"""Webhook schemas (docs/api.md) and the per-trigger security configuration."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from attune.api.schemas.common import ApiModel, RequestModel


class WebhookRequest(BaseModel):
    """The raw JSON envelope a webhook sender posts. ``payload`` is required (it may be null)."""

    model_config = ConfigDict(extra="ignore")

    payload: Any
    headers: Any = None
    source_ip: str | None = None
    user_agent: str | None = None


class WebhookExecution(ApiModel):
    """One execution the event caused, as a waiting receiver reports it (docs/webhooks.md)."""

    id: int
    action_ref: str
    status: str
    result: Any = None
    created: datetime
    updated: datetime


class WebhookReceiverResponse(ApiModel):
    """What the receiver answers once the event exists (with ``?wait=``: once its runs ended).

    ``executions`` and ``completed`` appear only when the request asked to wait.
    """

    omit_if_none = frozenset({"executions", "completed"})
    event_id: int
    trigger_ref: str
    received_at: datetime
    message: str = "Webhook received successfully"
    executions: list[WebhookExecution] | None = Field(
        default=None, description="With ?wait=: the executions the event caused (id, status, result)"
    )
    completed: bool | None = Field(
        default=None,
        description="With ?wait=: true when every execution ended before the wait elapsed",
    )


# --- per-trigger security configuration (PUT/GET /triggers/{ref}/webhooks/config) ----------

HMAC_ALGORITHM_NAMES = ("sha256", "sha512", "sha1")


class HmacConfig(RequestModel):
    """HMAC signature verification over the raw request body."""

    enabled: bool = False
    secret: str | None = Field(
        default=None,
        min_length=1,
        max_length=1024,
        description="Write-only. Absent or null keeps the stored secret; required to enable HMAC "
        "when none is stored",
    )
    # A pattern rather than a Literal, so a wrong value is a 422 VALIDATION_ERROR naming the field.
    algorithm: str = Field(
        default="sha256",
        pattern="^(sha256|sha512|sha1)$",
        json_schema_extra={"enum": list(HMAC_ALGORITHM_NAMES)},
    )


class IpWhitelistConfig(RequestModel):
    """Client addresses allowed to call the webhook."""

    enabled: bool = False
    ips: list[str] = Field(
        default_factory=list, max_length=1000, description="IPv4/IPv6 addresses or CIDR networks"
    )


class RateLimitConfig(RequestModel):
    """At most ``requests`` accepted webhook calls per ``window_seconds`` (sliding window)."""

    enabled: bool = False
    requests: int | None = Field(default=None, ge=1, le=1_000_000)
    window_seconds: int | None = Field(default=None, ge=1, le=86_400)

    @model_validator(mode="after")
    def _complete_when_enabled(self) -> RateLimitConfig:
        if self.enabled and (self.requests is None or self.window_seconds is None):
            raise ValueError("requests and window_seconds are required when the rate limit is enabled")
        return self


class WebhookConfig(RequestModel):
    """Body of ``PUT /triggers/{ref}/webhooks/config``: the whole configuration.

    A section left out is stored disabled; ``payload_size_limit_kb`` null means no limit beyond
    the server's upload limit.
    """

    hmac: HmacConfig = Field(default_factory=HmacConfig)
    ip_whitelist: IpWhitelistConfig = Field(default_factory=IpWhitelistConfig)
    payload_size_limit_kb: int | None = Field(default=None, ge=1, le=102_400)
    rate_limit: RateLimitConfig = Field(default_factory=RateLimitConfig)


class HmacConfigResponse(ApiModel):
    enabled: bool
    algorithm: str
    secret_set: bool = Field(description="Whether a secret is stored (the secret itself is never returned)")


class IpWhitelistResponse(ApiModel):
    enabled: bool
    ips: list[str]


class RateLimitResponse(ApiModel):
    enabled: bool
    requests: int | None
    window_seconds: int | None


class WebhookConfigResponse(ApiModel):
    """A trigger's webhook security configuration, without the HMAC secret."""

    hmac: HmacConfigResponse
    ip_whitelist: IpWhitelistResponse
    payload_size_limit_kb: int | None
    rate_limit: RateLimitResponse
