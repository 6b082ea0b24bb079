"""In-memory description of a parsed pack directory (docs/packs.md).

These are plain frozen value objects produced by :func:`attune.packs.parser.parse_pack_dir`; the
registration code turns them into database rows. Field names follow the database columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attune.domain.retry import RetryPolicy

JsonObject = dict[str, Any]


@dataclass(frozen=True)
class PackSpec:
    """``pack.yaml`` (docs/packs.md). ``config`` already has ``conf_schema`` defaults filled in."""

    ref: str
    label: str
    description: str
    version: str
    system: bool
    conf_schema: JsonObject
    config: JsonObject
    meta: JsonObject
    tags: list[str]
    runtime_deps: list[str]
    dependencies: list[str]
    python: str | None
    nodejs: str | None
    testing: JsonObject | None
    path: Path


@dataclass(frozen=True)
class RuntimeVersionSpec:
    """One entry of a runtime's ``versions`` list; ``major``/``minor``/``patch`` per docs/packs.md."""

    version: str
    is_default: bool
    execution_config: JsonObject
    distributions: JsonObject
    meta: JsonObject
    major: int | None
    minor: int | None
    patch: int | None


@dataclass(frozen=True)
class RuntimeSpec:
    """``runtimes/*.yaml`` (docs/packs.md)."""

    ref: str
    name: str
    description: str
    distributions: JsonObject
    installation: JsonObject
    execution_config: JsonObject
    versions: list[RuntimeVersionSpec] = field(default_factory=list)


@dataclass(frozen=True)
class TriggerSpec:
    """``triggers/*.yaml`` (docs/packs.md)."""

    ref: str
    label: str
    description: str
    enabled: bool
    param_schema: JsonObject | None
    out_schema: JsonObject | None


@dataclass(frozen=True)
class ActionSpec:
    """``actions/*.yaml`` (docs/packs.md).

    ``runtime_ref`` is ``core.shell``/``core.python``/``core.nodejs``/``core.native`` for the known
    runner aliases, otherwise the raw ``runner_type`` value, which registration resolves as a
    runtime ref and then as a runtime name. ``entrypoint`` is relative to ``actions/``.
    """

    ref: str
    label: str
    description: str
    entrypoint: str
    runner_type: str
    runtime_ref: str
    runtime_version_constraint: str | None
    param_schema: JsonObject | None
    out_schema: JsonObject | None
    parameter_delivery: str
    parameter_format: str
    output_format: str
    timeout_seconds: int | None
    #: ``retry: {count, delay, on}`` / ``max_retries`` (docs/packs.md); None: never retried.
    retry: RetryPolicy | None = None


@dataclass(frozen=True)
class SensorSpec:
    """``sensors/*.yaml`` (docs/packs.md); ``trigger_refs`` are fully qualified."""

    ref: str
    label: str
    description: str
    entrypoint: str
    runtime_ref: str
    runtime_version_constraint: str | None
    trigger_refs: list[str]
    param_schema: JsonObject | None
    config: JsonObject
    enabled: bool


@dataclass(frozen=True)
class RuleSpec:
    """``rules/*.yaml`` (docs/packs.md); pack rules are stored with ``is_adhoc = false``."""

    ref: str
    label: str
    description: str
    trigger_ref: str
    trigger_params: JsonObject
    action_ref: str
    action_params: JsonObject
    conditions: Any  # as written: a list, an all/any/not group or an expression (docs/rules.md)
    enabled: bool


@dataclass(frozen=True)
class PolicySpec:
    """``policies/*.yaml``: an execution policy (docs/packs.md, docs/operations.md).

    ``action_ref`` is ``None`` for a pack-wide policy. ``window_seconds`` is set only for
    ``kind = rate_limit``. ``rel_path`` is the source file, so registration errors can name it.
    """

    ref: str
    name: str
    description: str
    action_ref: str | None
    kind: str
    threshold: int
    window_seconds: int | None
    method: str
    parameters: list[str]
    tags: list[str]
    rel_path: str
    #: Whether manual runs count against the policy (docs/policies.md).
    apply_to_manual: bool = True


@dataclass(frozen=True)
class WorkflowFileSpec:
    """A workflow file, carried through unparsed (docs/workflows.md does the parsing).

    ``rel_path`` is relative to the pack directory, e.g. ``workflows/deploy.yaml`` or
    ``actions/workflows/deploy.workflow.yaml``; ``raw`` is the loaded YAML mapping.
    """

    ref: str
    name: str
    path: Path
    rel_path: str
    raw: JsonObject
    #: Set for a StackStorm action file that points at this workflow (``orquesta``, ``action-chain``):
    #: the runner picks the dialect and ``parameters`` (the action's schema) the inputs.
    runner_type: str | None = None
    parameters: JsonObject | None = None


@dataclass(frozen=True)
class ParsedPack:
    """Everything found in a pack directory, in load order, plus non-fatal warnings."""

    pack: PackSpec
    runtimes: list[RuntimeSpec] = field(default_factory=list)
    triggers: list[TriggerSpec] = field(default_factory=list)
    actions: list[ActionSpec] = field(default_factory=list)
    sensors: list[SensorSpec] = field(default_factory=list)
    workflows: list[WorkflowFileSpec] = field(default_factory=list)
    rules: list[RuleSpec] = field(default_factory=list)
    policies: list[PolicySpec] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: Files skipped because they use something Attune does not run (also in ``warnings``);
    #: registration with ``fail_on_error`` refuses the pack when there are any.
    skipped: list[str] = field(default_factory=list)
