"""Key schemas (docs/api.md): configuration values and secrets with an owner."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field, field_validator

from attune.api.schemas.common import ApiModel, RequestModel
from attune.domain.enums import OwnerType
from attune.domain.refs import is_key_ref


class CreateKeyRequest(RequestModel):
    """``POST /keys``. ``owner`` is accepted but always overwritten by the server."""

    ref: str = Field(min_length=1, max_length=255, description="Lowercase, dot-separated segments")
    owner_type: OwnerType
    owner: str | None = Field(default=None, max_length=255)
    owner_identity: int | None = None
    owner_identity_login: str | None = Field(
        default=None, max_length=255, description="Attune extension: the owning identity by login"
    )
    owner_pack: int | None = None
    owner_pack_ref: str | None = Field(default=None, max_length=255)
    owner_action: int | None = None
    owner_action_ref: str | None = Field(default=None, max_length=255)
    owner_sensor: int | None = None
    owner_sensor_ref: str | None = Field(default=None, max_length=255)
    name: str = Field(min_length=1, max_length=255)
    value: str = Field(min_length=1, max_length=10000)
    encrypted: bool = True

    @field_validator("ref")
    @classmethod
    def _ref_format(cls, value: str) -> str:
        # A ValueError is a field-rule failure: JSON 422 VALIDATION_ERROR naming ``ref``.
        if not is_key_ref(value):
            raise ValueError("must be lowercase dot-separated non-empty segments")
        return value


class UpdateKeyRequest(RequestModel):
    """``PUT /keys/{ref}``: absent and null both mean "leave unchanged"."""

    name: str | None = Field(default=None, min_length=1, max_length=255)
    value: str | None = Field(default=None, min_length=1, max_length=10000)
    encrypted: bool | None = None


class KeySummary(ApiModel):
    """A key in a list: never carries the value."""

    id: int
    ref: str
    owner_type: OwnerType
    owner: str | None
    name: str
    encrypted: bool
    created: datetime


class KeyResponse(ApiModel):
    """One key with its value in plaintext (decrypted); the fingerprint is never returned."""

    id: int
    ref: str
    owner_type: OwnerType
    owner: str | None
    owner_identity: int | None
    owner_pack: int | None
    owner_pack_ref: str | None
    owner_action: int | None
    owner_action_ref: str | None
    owner_sensor: int | None
    owner_sensor_ref: str | None
    name: str
    encrypted: bool
    value: str
    created: datetime
    updated: datetime
