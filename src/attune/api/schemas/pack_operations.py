"""Schemas of the pack-management building blocks the core pack's actions call (docs/api.md)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from attune.api.schemas.common import ApiModel, RequestModel


class DownloadPacks(RequestModel):
    packs: list[str] = Field(min_length=1, max_length=50)
    destination_dir: str | None = Field(default=None, description="Ignored: each pack gets a server temp dir")
    registry_url: str | None = Field(default=None, description="Ignored: the configured registries are used")
    ref_spec: str | None = Field(default=None, max_length=255)
    timeout: int = 300
    verify_ssl: bool = True


class DownloadedPack(ApiModel):
    source: str
    source_type: str
    pack_path: str
    pack_ref: str
    pack_version: str
    git_commit: str | None = None
    checksum: str | None = None


class FailedSource(ApiModel):
    source: str
    error: str


class DownloadPacksResponse(ApiModel):
    downloaded_packs: list[DownloadedPack]
    failed_packs: list[FailedSource]
    total_count: int
    success_count: int
    failure_count: int


class PackDependencies(RequestModel):
    pack_paths: list[str] = Field(min_length=1, max_length=100)
    skip_validation: bool = Field(default=False, description="Ignored")


class PackDependency(ApiModel):
    pack_ref: str
    version_spec: str
    required_by: str
    already_installed: bool


class AnalyzedPack(ApiModel):
    pack_ref: str
    pack_path: str
    has_dependencies: bool
    dependency_count: int


class PathError(ApiModel):
    pack_path: str
    error: str


class PackDependenciesResponse(ApiModel):
    dependencies: list[PackDependency]
    runtime_requirements: dict[str, Any]
    missing_dependencies: list[PackDependency]
    analyzed_packs: list[AnalyzedPack]
    errors: list[PathError]


class BuildPackEnvs(RequestModel):
    pack_paths: list[str] = Field(min_length=1, max_length=100)
    packs_base_dir: str | None = Field(default=None, description="Ignored")
    python_version: str = Field(
        default="3.11", description="Informational: the runtime version is chosen as workers do"
    )
    nodejs_version: str = Field(default="20", description="Informational")
    skip_python: bool = False
    skip_nodejs: bool = False
    force_rebuild: bool = False
    timeout: int = Field(default=600, ge=1, le=7200)


class FailedEnvironment(ApiModel):
    pack_ref: str
    pack_path: str
    runtime: str
    error: str


class BuiltEnvironments(ApiModel):
    pack_ref: str
    pack_path: str
    environments: dict[str, Any]
    duration_ms: int


class BuildSummary(ApiModel):
    total_packs: int
    success_count: int
    failure_count: int
    python_envs_built: int
    nodejs_envs_built: int
    total_duration_ms: int


class BuildPackEnvsResponse(ApiModel):
    built_environments: list[BuiltEnvironments]
    failed_environments: list[FailedEnvironment]
    summary: BuildSummary
