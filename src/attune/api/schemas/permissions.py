"""Identities, permission sets and assignments (docs/security.md "Permission sets")."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from attune.api.schemas.common import ApiModel, RequestModel


class GrantModel(ApiModel):
    """``{resource, actions, constraints: {packs?, owner?}}``"""

    resource: str = Field(description="A resource name, or `*` for all")
    actions: list[str] = Field(description="read, create, update, delete, execute, respond, manage")
    constraints: dict[str, Any] = Field(
        default_factory=dict, description='`packs`: [pack refs]; `owner`: "self"'
    )


class CreateIdentityRequest(RequestModel):
    login: str = Field(min_length=3, max_length=255)
    password: str = Field(min_length=8, max_length=128)
    display_name: str | None = Field(default=None, max_length=255)
    is_admin: bool = Field(default=False, description="Attune extension: an administrator")


class UpdateIdentityRequest(RequestModel):
    display_name: str | None = Field(default=None, max_length=255)
    password: str | None = Field(default=None, min_length=8, max_length=128)
    is_admin: bool | None = Field(default=None, description="Only an administrator may change it")


class IdentityResponse(ApiModel):
    id: int
    login: str
    display_name: str | None
    is_admin: bool
    permission_sets: list[str] = Field(default_factory=list)
    created: datetime
    updated: datetime


class IdentityPermissions(ApiModel):
    identity_id: int
    login: str
    is_admin: bool
    permission_sets: list[str]
    grants: list[GrantModel]


class PermissionSetRequest(RequestModel):
    ref: str = Field(min_length=3, max_length=255, pattern=r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_.-]+$")
    label: str | None = Field(default=None, max_length=255)
    description: str | None = Field(default=None, max_length=4096)
    grants: list[dict[str, Any]] = Field(default_factory=list, max_length=200)


class UpdatePermissionSetRequest(RequestModel):
    label: str | None = Field(default=None, max_length=255)
    description: str | None = Field(default=None, max_length=4096)
    grants: list[dict[str, Any]] | None = Field(default=None, max_length=200)


class PermissionSetResponse(ApiModel):
    id: int
    ref: str
    pack_ref: str | None
    label: str | None
    description: str | None
    grants: list[GrantModel]
    created: datetime
    updated: datetime


class AssignmentRequest(RequestModel):
    identity_id: int
    permission_set_ref: str = Field(min_length=1, max_length=255)


class AssignmentResponse(ApiModel):
    id: int
    identity_id: int
    permission_set_ref: str
    created: datetime
