"""Execution policy schemas (Attune extension; docs/policies.md)."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from attune.api.schemas.common import ApiModel


class PolicyResponse(ApiModel):
    """A concurrency or rate-limit policy, as registered from a pack's ``policies/*.yaml``."""

    id: int
    ref: str
    pack: int | None
    pack_ref: str | None
    action: int | None
    action_ref: str | None
    name: str
    description: str | None
    kind: str = Field(description="`concurrency` or `rate_limit`")
    threshold: int
    window_seconds: int | None
    method: str = Field(description="`enqueue` (wait for a slot) or `cancel`")
    parameters: list[str]
    apply_to_manual: bool = Field(description="Whether manual runs count against the policy")
    tags: list[str]
    created: datetime
    updated: datetime
