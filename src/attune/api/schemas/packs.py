"""Pack schemas (docs/api.md): CRUD bodies, registration, installation and upload."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from attune.api.schemas.common import ApiModel, RequestModel


class CreatePack(RequestModel):
    """``POST /packs``. ``ref`` must match ``^[a-z][a-z0-9_-]+$``; ``version`` must be semver."""

    ref: str = Field(min_length=1, max_length=255, description="Lowercase pack ref, e.g. `slack`")
    label: str = Field(min_length=1, max_length=255)
    description: str | None = None
    version: str = Field(min_length=1, max_length=50, description="Semantic version N.N.N[-pre][+build]")
    conf_schema: dict[str, Any] = Field(default_factory=dict, description="Flat schema of `config`")
    config: dict[str, Any] = Field(
        default_factory=dict, description="Pack settings; validated against `conf_schema`, defaults filled"
    )
    meta: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    runtime_deps: list[str] = Field(default_factory=list)
    dependencies: list[str] = Field(default_factory=list)
    is_standard: bool = False


class UpdatePack(RequestModel):
    """``PUT /packs/{ref}``: absent and null both leave a field unchanged."""

    label: str | None = Field(default=None, min_length=1, max_length=255)
    description: str | None = None
    version: str | None = Field(default=None, min_length=1, max_length=50)
    conf_schema: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    meta: dict[str, Any] | None = None
    tags: list[str] | None = None
    runtime_deps: list[str] | None = None
    dependencies: list[str] | None = None
    is_standard: bool | None = None


class PackSummary(ApiModel):
    id: int
    ref: str
    label: str
    description: str | None
    version: str
    tags: list[str]
    is_standard: bool
    created: datetime
    updated: datetime


class PackResponse(PackSummary):
    conf_schema: dict[str, Any]
    config: dict[str, Any]
    meta: dict[str, Any]
    runtime_deps: list[str]
    dependencies: list[str]


class RegisterPack(RequestModel):
    """``POST /packs/register``: a directory on the server, registered in place."""

    path: str = Field(
        min_length=1,
        description="Server-local pack directory; a relative path is tried against the server's "
        "working directory, then against packs_base_dir",
    )
    skip_tests: bool = False
    force: bool = False
    fail_on_error: bool = Field(
        default=False,
        description="Refuse the pack (422) instead of skipping files it cannot load (for CI)",
    )


class PackRegisterResponse(PackResponse):
    """``POST /packs/register``: the pack, plus the files that were skipped and why, plus ``pack``
    (the same PackResponse), ``tests_skipped`` and ``test_result`` as ``/packs/install`` answers
    (a superset, so clients reading the bare pack and clients reading ``data.pack`` both work)."""

    pack: PackResponse
    tests_skipped: bool = True
    test_result: dict[str, Any] | None = Field(
        default=None, description="The pack test run; null when skipped"
    )

    warnings: list[str] = Field(
        default_factory=list,
        description="One line per problem: the file, what was skipped and why (unsupported "
        "StackStorm content, a workflow that does not validate, an unknown runner)",
    )


class PackUploadResponse(PackResponse):
    """``POST /packs/upload``: the pack, plus the files that were skipped and why."""

    warnings: list[str] = Field(
        default_factory=list,
        description="One line per problem: the file, what was skipped and why (as /packs/register)",
    )


class RegisterPacks(RequestModel):
    """``POST /packs/register-batch``."""

    pack_paths: list[str]
    packs_base_dir: str | None = Field(default=None, description="Ignored")
    skip_validation: bool = Field(default=False, description="Ignored")
    skip_tests: bool = False
    force: bool = False
    fail_on_error: bool = Field(default=False, description="Refuse packs with files that cannot be loaded")


class ComponentCounts(ApiModel):
    actions: int = 0
    sensors: int = 0
    triggers: int = 0
    rules: int = 0
    workflows: int = 0
    policies: int = 0


class ValidationResults(ApiModel):
    valid: bool = True
    errors: list[Any] = Field(default_factory=list)


class RegisteredPack(ApiModel):
    pack_ref: str
    pack_id: int
    pack_version: str
    storage_path: str
    components_registered: ComponentCounts
    test_result: dict[str, Any] | None = None
    validation_results: ValidationResults = Field(default_factory=ValidationResults)
    warnings: list[str] = Field(default_factory=list, description="Files skipped and why")


class FailedPackRegistration(ApiModel):
    pack_ref: str = "unknown"
    pack_path: str
    error: str
    error_stage: str = "registration"


class RegisterPacksSummary(ApiModel):
    total_packs: int
    success_count: int
    failure_count: int
    total_components: int
    duration_ms: int


class RegisterPacksResponse(ApiModel):
    registered_packs: list[RegisteredPack]
    failed_packs: list[FailedPackRegistration]
    summary: RegisterPacksSummary


class InstallPack(RequestModel):
    """``POST /packs/install``: a server-local directory or archive, an archive URL, a git URL or a
    registry ref ``name[@version]`` (docs/packs.md)."""

    source: str = Field(
        min_length=1, max_length=4096, description="URL, git URL, local path or registry ref name[@version]"
    )
    ref_spec: str | None = Field(
        default=None, max_length=255, description="Branch, tag or commit (git sources)"
    )
    skip_tests: bool = False
    skip_deps: bool = False
    fail_on_error: bool = Field(
        default=False,
        description="Refuse the pack (422) instead of skipping files it cannot load (for CI)",
    )


class PackInstallResponse(ApiModel):
    pack: PackResponse
    test_result: dict[str, Any] | None = Field(
        default=None, description="The PackTestResult of the install's test run (null when none ran)"
    )
    tests_skipped: bool
    previous_version: str | None = Field(default=None, description="Attune extension: the replaced version")
    dependencies_installed: list[str] = Field(
        default_factory=list, description="Attune extension: `ref version` of dependencies installed first"
    )
    warnings: list[str] = Field(default_factory=list, description="Attune extension")
