"""Action schemas (docs/api.md) and the flat-schema field type shared by triggers and sensors."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

import jsonschema.exceptions
import jsonschema.validators
from pydantic import AfterValidator, Field

from attune.api.schemas.common import ApiModel, RequestModel
from attune.domain.enums import OutputFormat, ParameterDelivery, ParameterFormat
from attune.domain.params import is_full_form, to_json_schema
from attune.domain.retry import MAX_COUNT, MAX_DELAY_SECONDS, RETRY_ON, RetryPolicy


def check_flat_schema(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """Accept a flat parameter schema (docs/api.md) that jsonschema can compile.

    Every entry of a flat map must itself be an object; a full-form schema (``type: object`` with
    ``properties``) is accepted as is. Raises ``ValueError`` so the API answers 422 naming the field.
    """
    if value is None:
        return None
    if not is_full_form(value):
        bad = sorted(name for name, spec in value.items() if not isinstance(spec, Mapping))
        if bad:
            raise ValueError(f"parameter definitions must be objects (not: {', '.join(bad)})")
    schema = to_json_schema(value)
    assert schema is not None
    try:
        jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator).check_schema(
            schema
        )
    except jsonschema.exceptions.SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path)
        raise ValueError(f"not a valid schema: {exc.message}" + (f" at {where}" if where else "")) from exc
    return value


#: A ``param_schema``/``out_schema`` body field: a flat schema that must compile.
FlatSchema = Annotated[dict[str, Any] | None, AfterValidator(check_flat_schema)]


class RetrySpec(RequestModel):
    """An action's retry policy (docs/packs.md "Retries")."""

    count: int = Field(default=0, ge=0, le=MAX_COUNT, description="Attempts after the first; 0 = never")
    delay: int | None = Field(
        default=None,
        ge=0,
        le=MAX_DELAY_SECONDS,
        description="Seconds between attempts; null = exponential backoff (1 s, 2 s, 4 s, … ≤ 300 s)",
    )
    on: list[Literal["failed", "timeout"]] | None = Field(
        default=None, min_length=1, description="Outcomes that are retried; null = failed and timeout"
    )

    def policy(self) -> RetryPolicy:
        return RetryPolicy(self.count, self.delay, tuple(dict.fromkeys(self.on or RETRY_ON)))


def retry_policy(retry: RetrySpec | None, max_retries: int | None) -> RetryPolicy | None:
    """The policy a request sets: ``retry`` wins over the older ``max_retries``; None: unchanged."""
    if retry is not None:
        return retry.policy()
    if max_retries is not None:
        return RetryPolicy(count=max_retries)
    return None


class RetryResponse(ApiModel):
    count: int
    delay: int | None
    on: list[str]


class CreateAction(RequestModel):
    """Body of ``POST /actions``."""

    ref: str = Field(min_length=1, max_length=255, description="Lowercase `pack.name` with exactly one dot")
    pack_ref: str = Field(min_length=1, max_length=255, description="The pack must exist")
    label: str = Field(min_length=1, max_length=255)
    description: str | None = Field(
        default=None, min_length=1, description='Attune extension: optional, stored as "" when absent'
    )
    entrypoint: str = Field(min_length=1, max_length=1024)
    runtime: int | None = Field(default=None, description="A runtime id; an unknown id gets 422")
    runtime_ref: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        description="Attune extension: a runtime ref or runtime name (e.g. `core.shell`, `shell`); "
        "takes precedence over `runtime`; unknown → 404",
    )
    runtime_version_constraint: str | None = None
    param_schema: FlatSchema = None
    out_schema: FlatSchema = None
    parameter_delivery: ParameterDelivery | None = Field(default=None, description="Attune extension (stdin)")
    parameter_format: ParameterFormat | None = Field(default=None, description="Attune extension (json)")
    output_format: OutputFormat | None = Field(default=None, description="Attune extension (text)")
    timeout_seconds: int | None = Field(default=None, ge=1, description="Attune extension")
    retry: RetrySpec | None = Field(default=None, description="Attune extension: the retry policy")
    max_retries: int | None = Field(
        default=None,
        ge=0,
        le=MAX_COUNT,
        description="Older form of `retry: {count}` (kept for compatibility)",
    )


class UpdateAction(RequestModel):
    """Body of ``PUT /actions/{ref}``; absent and null both mean "leave unchanged"."""

    label: str | None = Field(default=None, min_length=1, max_length=255)
    description: str | None = Field(default=None, min_length=1)
    entrypoint: str | None = Field(default=None, min_length=1, max_length=1024)
    runtime: int | None = None
    runtime_ref: str | None = Field(
        default=None, min_length=1, max_length=255, description="Attune extension, as on create"
    )
    runtime_version_constraint: str | None = None
    param_schema: FlatSchema = None
    out_schema: FlatSchema = None
    parameter_delivery: ParameterDelivery | None = Field(default=None, description="Attune extension")
    parameter_format: ParameterFormat | None = Field(default=None, description="Attune extension")
    output_format: OutputFormat | None = Field(default=None, description="Attune extension")
    timeout_seconds: int | None = Field(default=None, ge=1, description="Attune extension")
    retry: RetrySpec | None = Field(default=None, description="Attune extension: replaces the retry policy")
    max_retries: int | None = Field(
        default=None,
        ge=0,
        le=MAX_COUNT,
        description="Older form of `retry: {count}` (kept for compatibility)",
    )


class ActionSummary(ApiModel):
    """An action in lists."""

    omit_if_none = frozenset({"runtime_version_constraint", "workflow_def"})

    id: int
    ref: str
    pack_ref: str
    label: str
    description: str
    entrypoint: str
    runtime: int | None
    runtime_version_constraint: str | None = Field(default=None, description="Omitted when null")
    workflow_def: int | None = Field(default=None, description="Omitted when null")
    created: datetime
    updated: datetime


class ActionResponse(ActionSummary):
    """A full action."""

    pack: int
    param_schema: Any
    out_schema: Any
    is_adhoc: bool
    parameter_delivery: ParameterDelivery = Field(description="Attune extension")
    parameter_format: ParameterFormat = Field(description="Attune extension")
    output_format: OutputFormat = Field(description="Attune extension")
    timeout_seconds: int | None = Field(description="Attune extension")
    retry: RetryResponse = Field(description="Attune extension: the retry policy")
    max_retries: int = Field(description="The retry policy's `count` (older field)")


class QueueStatsResponse(ApiModel):
    """Per-action FIFO queue counters (``QueueStats``)."""

    action_id: int
    action_ref: str
    queue_length: int
    active_count: int
    max_concurrent: int
    oldest_enqueued_at: datetime | None
    total_enqueued: int
    total_completed: int
    last_updated: datetime
