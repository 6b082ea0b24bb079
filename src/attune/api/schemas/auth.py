"""Auth schemas (docs/api.md)."""

from __future__ import annotations

from pydantic import Field

from attune.api.schemas.common import ApiModel, RequestModel


class LoginRequest(RequestModel):
    login: str = Field(min_length=1, max_length=255)
    password: str = Field(min_length=1)


class RegisterRequest(RequestModel):
    login: str = Field(min_length=3, max_length=255)
    password: str = Field(min_length=8, max_length=128)
    display_name: str | None = Field(default=None, max_length=255)


class RefreshRequest(RequestModel):
    refresh_token: str


class ChangePasswordRequest(RequestModel):
    current_password: str = Field(min_length=1)
    new_password: str = Field(min_length=8, max_length=128)


class SensorTokenRequest(RequestModel):
    sensor_ref: str = Field(min_length=1, max_length=255)
    trigger_types: list[str] = Field(min_length=1)
    ttl_seconds: int | None = Field(default=None, ge=3600, le=259200)


class UserInfo(ApiModel):
    id: int
    login: str
    display_name: str | None


class TokenResponse(ApiModel):
    omit_if_none = frozenset({"user"})
    access_token: str
    refresh_token: str
    token_type: str = "Bearer"
    expires_in: int
    user: UserInfo | None = None


class SensorTokenResponse(ApiModel):
    identity_id: int
    sensor_ref: str
    token: str
    expires_at: str
    trigger_types: list[str]


class SuccessBody(ApiModel):
    success: bool = True
    message: str
