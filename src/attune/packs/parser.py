"""Turn a pack directory into validated component specs (docs/packs.md). No database access.

Parsing is strict: the first malformed file rejects the whole pack with a
:class:`PackFormatError` whose message starts with the file's path relative to the pack directory
and names the offending field. Problems that only matter once the pack is registered (an entry
point file that is missing, a runner type that is not a known alias) become ``warnings``.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

import jsonschema
import jsonschema.exceptions

from attune.domain import params, refs
from attune.domain.enums import OutputFormat, ParameterDelivery, ParameterFormat, PolicyMethod, values
from attune.domain.retry import RetryPolicy, RetryPolicyError, parse_retry
from attune.domain.runtimes import resolve_runner
from attune.errors import ValidationFailed
from attune.packs import st2
from attune.packs.conditions import condition_problem
from attune.packs.manifest import (
    ActionSpec,
    JsonObject,
    PackSpec,
    ParsedPack,
    PolicySpec,
    RuleSpec,
    RuntimeSpec,
    RuntimeVersionSpec,
    SensorSpec,
    TriggerSpec,
    WorkflowFileSpec,
)
from attune.packs.parse_base import MAX_WORKFLOW_BYTES, ParserBase
from attune.packs.st2_parse import st2_action, st2_config_schema, st2_sensor
from attune.packs.yamlfields import Fields, PackFormatError, PackNotFoundError, load_yaml, type_name

__all__ = [
    "MAX_WORKFLOW_BYTES",
    "PackFormatError",
    "PackNotFoundError",
    "condition_problem",
    "parse_pack_dir",
    "resolve_runner",
]


ENV_TYPES = ("virtualenv", "node_modules", "none")
ON_FAILURE = ("block", "warn", "ignore")
POLICY_KINDS = ("concurrency", "rate_limit")


class _PackParser(ParserBase):
    """Parses one pack directory into component specs."""

    # -- pack.yaml ---------------------------------------------------------------------------

    def parse_pack(self) -> PackSpec:
        manifest = self.dir / "pack.yaml"
        if not manifest.is_file():
            raise PackNotFoundError(f"pack.yaml not found in {self.dir}")
        f = Fields("pack.yaml", load_yaml(manifest, "pack.yaml"))
        self.st2 = st2.is_st2_manifest(f.doc)
        if self.st2 and f.doc.get("ref") is None:
            f = Fields("pack.yaml", {**f.doc, "ref": st2.manifest_ref(f.doc)})  # st2: ref = name
        ref = f.required_text("ref")
        if not refs.is_pack_ref(ref):
            f.fail(f"ref must match ^[a-z][a-z0-9_-]+$ (got {ref!r})")
        self.pack_ref = ref
        version = f.version_text("version")
        if not version:
            f.fail("missing required field 'version'")
        if not refs.is_semver(version):
            f.fail(f"version must be a semantic version MAJOR.MINOR.PATCH (got {version!r})")
        conf_schema = f.schema("conf_schema") or st2_config_schema(self.dir)
        # Defaults first, so a required setting that has a default is not reported missing.
        config = params.apply_defaults(f.mapping("config"), conf_schema)
        try:
            problems = params.schema_errors(config, conf_schema)
        except jsonschema.exceptions.SchemaError as exc:  # pragma: no cover - checked by f.schema
            f.fail(f"invalid conf_schema: {exc.message}")
        if problems:
            f.fail(f"config does not match conf_schema: {', '.join(problems)}")
        dependencies = f.str_list("dependencies")
        for dependency in dependencies:
            if not refs.is_pack_ref(dependency.split("@", 1)[0].strip()):
                f.fail(f"dependencies entry {dependency!r} must be '<pack_ref>' or '<pack_ref>@<constraint>'")
        return PackSpec(
            ref=ref,
            label=f.text("label") or f.text("name") or ref,
            description=f.text("description"),
            version=version,
            system=f.boolean("system", False),
            conf_schema=conf_schema,
            config=config,
            meta=f.mapping("meta"),
            tags=f.str_list("tags"),
            runtime_deps=f.str_list("runtime_deps"),
            dependencies=dependencies,
            python=f.version_text("python"),
            nodejs=f.version_text("nodejs"),
            testing=self.testing(f),
            path=self.dir,
        )

    def testing(self, f: Fields) -> JsonObject | None:
        testing = f.opt_mapping("testing")
        if testing is None:
            return None
        t = f.nested("testing", testing)
        t.boolean("enabled", False)
        t.mapping("discovery")
        for name, runner in t.mapping("runners").items():
            if not isinstance(runner, dict):
                t.fail(f"testing.runners.{name} must be a mapping (got {type_name(runner)})")
            r = t.nested(f"runners.{name}", runner)
            r.required_text("type")
            r.required_text("entry_point")
            r.integer("timeout", minimum=1)
        rate = testing.get("min_pass_rate")
        if rate is not None and (
            isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1
        ):
            t.fail(f"testing.min_pass_rate must be a number between 0.0 and 1.0 (got {rate!r})")
        t.choice("on_failure", ON_FAILURE, "block")
        return testing

    # -- components --------------------------------------------------------------------------

    def parse_runtime(self, path: Path) -> RuntimeSpec:
        f = Fields(self.rel(path), load_yaml(path, self.rel(path)))
        ref = self.component_ref(f, "runtime", path.stem, use_name=False)
        execution_config = f.mapping("execution_config")
        self.check_execution_config(f.nested("execution_config", execution_config))
        versions: list[RuntimeVersionSpec] = []
        raw_versions: list[Any] = f.items("versions")
        for index, entry in enumerate(raw_versions):
            where = f"versions[{index}]"
            if not isinstance(entry, dict):
                f.fail(f"{where} must be a mapping (got {type_name(entry)})")
            v = f.nested(where, entry)
            version = v.version_text("version")
            if not version:
                f.fail(f"missing required field '{where}.version'")
            if any(existing.version == version for existing in versions):
                f.fail(f"{where}.version '{version}' is listed twice")
            parsed = refs.parse_version_lenient(version)
            if parsed is None:
                self.warnings.append(f"{f.rel}: {where}.version '{version}' is not a parseable version")
            version_config = v.mapping("execution_config")
            self.check_execution_config(v.nested("execution_config", version_config))
            versions.append(
                RuntimeVersionSpec(
                    version=version,
                    is_default=v.boolean("is_default", False),
                    execution_config=version_config,
                    distributions=v.mapping("distributions"),
                    meta=v.mapping("meta"),
                    major=parsed[0] if parsed else None,
                    minor=parsed[1] if parsed else None,
                    patch=parsed[2] if parsed else None,
                )
            )
        if sum(1 for v in versions if v.is_default) > 1:
            f.fail("versions: at most one version may have is_default: true")
        return RuntimeSpec(
            ref=ref,
            name=f.text("name") or refs.name_of(ref),
            description=f.text("description"),
            distributions=f.mapping("distributions"),
            installation=f.mapping("installation"),
            execution_config=execution_config,
            versions=versions,
        )

    @staticmethod
    def check_execution_config(f: Fields) -> None:
        """Shape checks for ``execution_config`` (docs/packs.md)."""
        interpreter = f.opt_mapping("interpreter")
        if interpreter is not None:
            i = f.nested("interpreter", interpreter)
            i.text("binary")
            i.str_list("args")
            i.opt_text("file_extension")
        environment = f.opt_mapping("environment")
        if environment is not None:
            e = f.nested("environment", environment)
            if e.doc.get("env_type") is None:
                f.fail(f"missing required field '{e.prefix}env_type'")
            e.choice("env_type", ENV_TYPES, "none")
            e.opt_text("dir_name")
            e.str_list("create_command")
            e.opt_text("interpreter_path")
        dependencies = f.opt_mapping("dependencies")
        if dependencies is not None:
            d = f.nested("dependencies", dependencies)
            d.required_text("manifest_file")
            d.str_list("install_command")
        env_vars = f.mapping("env_vars")
        for name, value in env_vars.items():
            if not isinstance(value, str):
                f.fail(f"{f.prefix}env_vars.{name} must be a string (got {type_name(value)})")

    def parse_trigger(self, path: Path) -> TriggerSpec:
        f = Fields(self.rel(path), load_yaml(path, self.rel(path)))
        ref = self.component_ref(f, "trigger", path.stem)
        return TriggerSpec(
            ref=ref,
            label=self.label(f, ref),
            description=f.text("description"),
            enabled=f.boolean("enabled", True),
            param_schema=f.schema("parameters"),
            out_schema=f.schema("output"),
        )

    def parse_action(self, path: Path) -> ActionSpec | WorkflowFileSpec:
        f = Fields(self.rel(path), load_yaml(path, self.rel(path)))
        if st2.is_st2_action(f.doc):
            return st2_action(self, f, path)
        ref = self.component_ref(f, "action", path.stem)
        runner, runtime_ref = self.runtime(f, "shell")
        out_key = "output_schema" if f.doc.get("output_schema") is not None else "output"
        return ActionSpec(
            ref=ref,
            label=self.label(f, ref),
            description=f.text("description"),
            entrypoint=self.entry_point(f, "actions"),
            runner_type=runner,
            runtime_ref=runtime_ref,
            runtime_version_constraint=f.version_text("runtime_version") or None,
            param_schema=f.schema("parameters"),
            out_schema=f.schema(out_key),
            parameter_delivery=f.choice("parameter_delivery", values(ParameterDelivery), "stdin"),
            parameter_format=f.choice("parameter_format", values(ParameterFormat), "json"),
            output_format=f.choice("output_format", values(OutputFormat), "text"),
            timeout_seconds=f.integer("timeout", minimum=1),
            retry=self.retry(f),
        )

    @staticmethod
    def retry(f: Fields) -> RetryPolicy | None:
        """``retry: {count, delay, on}``, or the older ``max_retries: N`` (docs/packs.md)."""
        try:
            return parse_retry(f.doc.get("retry"), f.doc.get("max_retries"))
        except RetryPolicyError as exc:
            f.fail(str(exc))

    def parse_sensor(self, path: Path, trigger_refs: set[str]) -> tuple[SensorSpec, list[TriggerSpec]]:
        f = Fields(self.rel(path), load_yaml(path, self.rel(path)))
        if f.doc.get("class_name") is not None:
            return st2_sensor(self, f, path)
        ref = self.component_ref(f, "sensor", path.stem)
        _, runtime_ref = self.runtime(f, "native")
        if f.doc.get("trigger_types") is not None:
            names = f.str_list("trigger_types")
            key = "trigger_types"
        else:
            single = f.opt_text("trigger_type")
            names = [single] if single else []
            key = "trigger_type"
        if not names:
            f.fail("missing required field 'trigger_types'")
        qualified: list[str] = []
        for name in names:
            trigger_ref = self.qualify(name.strip())
            if refs.pack_of(trigger_ref) == self.pack_ref and trigger_ref not in trigger_refs:
                f.fail(f"{key}: trigger '{trigger_ref}' is not defined in this pack")
            if trigger_ref not in qualified:
                qualified.append(trigger_ref)
        return SensorSpec(
            ref=ref,
            label=self.label(f, ref),
            description=f.text("description"),
            entrypoint=self.entry_point(f, "sensors"),
            runtime_ref=runtime_ref,
            runtime_version_constraint=f.version_text("runtime_version") or None,
            trigger_refs=qualified,
            param_schema=f.schema("parameters"),
            config=f.mapping("config"),
            enabled=f.boolean("enabled", True),
        ), []

    def parse_workflows(self) -> list[WorkflowFileSpec]:
        found: list[tuple[str, Path]] = [(p.name.rsplit(".", 1)[0], p) for p in self.files("workflows")]
        suffixes = (".workflow.yaml", ".workflow.yml")
        for p in self.files("actions/workflows", suffixes):
            found.append((p.name[: -len(next(s for s in suffixes if p.name.endswith(s)))], p))
        by_name: dict[str, str] = {}
        specs: list[WorkflowFileSpec] = []
        for name, path in found:
            rel = self.rel(path)
            if name in by_name:
                raise PackFormatError(f"{rel}: workflow '{name}' is also defined in {by_name[name]}")
            by_name[name] = rel
            if path.stat().st_size > MAX_WORKFLOW_BYTES:
                raise PackFormatError(f"{rel}: workflow file is larger than 1 MiB")
            if path in self.claimed:
                continue  # the workflow of an st2 action file (orquesta/action-chain runner)
            try:
                doc = load_yaml(path, rel)
            except PackFormatError as exc:
                self.skip(f"{exc.message}; workflow skipped")
                continue
            f = Fields(rel, doc)
            expected = f"{self.pack_ref}.{name}"
            raw_ref = f.doc.get("ref")
            if raw_ref is not None and raw_ref != expected:
                f.fail(f"ref {raw_ref!r} must equal '{expected}' (pack ref + file name)")
            ref = self.component_ref(Fields(rel, {"ref": expected}), "workflow", name)
            if ref in self.seen.get("action", {}):
                f.fail(f"workflow '{ref}' has the same ref as the action in {self.seen['action'][ref]}")
            f.schema("parameters")
            f.schema("output")
            specs.append(WorkflowFileSpec(ref=ref, name=name, path=path, rel_path=rel, raw=doc))
        return specs

    def parse_rule(
        self, path: Path, actions: Mapping[str, JsonObject | None], triggers: Mapping[str, JsonObject | None]
    ) -> RuleSpec:
        f = Fields(self.rel(path), load_yaml(path, self.rel(path)))
        if st2.is_st2_rule(f.doc):
            try:
                f = Fields(f.rel, st2.rule_fields(f.doc, self.pack_ref))
            except ValueError as exc:
                f.fail(str(exc))
        ref = self.component_ref(f, "rule", path.stem)
        trigger_ref = self.qualify(f.required_text("trigger_ref").strip())
        action_ref = self.qualify(f.required_text("action_ref").strip())
        for field_name, target, known in (
            ("trigger_ref", trigger_ref, triggers),
            ("action_ref", action_ref, actions),
        ):
            if not refs.is_component_ref(target):
                f.fail(f"{field_name} '{target}' must be '<pack>.<name>'")
            if refs.pack_of(target) == self.pack_ref and target not in known:
                f.fail(f"{field_name} '{target}' is not defined in this pack")
        trigger_params = f.mapping("trigger_params")
        action_params = f.mapping("action_params")
        try:
            if trigger_ref in triggers:
                params.validate_params(
                    trigger_params,
                    triggers[trigger_ref],
                    kind="trigger",
                    ref=trigger_ref,
                    allow_templates=True,
                )
            if action_ref in actions:
                params.validate_params(
                    action_params, actions[action_ref], kind="action", ref=action_ref, allow_templates=True
                )
        except ValidationFailed as exc:
            f.fail(exc.message)
        conditions = f.doc.get("conditions") or []
        problem = condition_problem(conditions, "conditions")
        if problem is not None:
            f.fail(problem)
        return RuleSpec(
            ref=ref,
            label=self.label(f, ref),
            description=f.text("description"),
            trigger_ref=trigger_ref,
            trigger_params=trigger_params,
            action_ref=action_ref,
            action_params=action_params,
            conditions=conditions,
            enabled=f.boolean("enabled", True),
        )

    def parse_policy(self, path: Path, actions: Mapping[str, object]) -> PolicySpec:
        """``policies/*.yaml`` (docs/packs.md); ``actions`` are the refs this pack defines."""
        f = Fields(self.rel(path), load_yaml(path, self.rel(path)))
        ref = self.component_ref(f, "policy", path.stem, use_name=False)
        raw_action = f.opt_text("action")
        action_ref = self.qualify(raw_action.strip()) if raw_action and raw_action.strip() else None
        if action_ref is not None:
            if not refs.is_component_ref(action_ref):
                f.fail(f"action '{action_ref}' must be '<pack>.<name>'")
            if refs.pack_of(action_ref) == self.pack_ref and action_ref not in actions:
                f.fail(f"action '{action_ref}' is not defined in this pack")
        kind = f.choice("kind", POLICY_KINDS, "concurrency")
        if f.doc.get("threshold") is None:
            f.fail("missing required field 'threshold'")
        threshold = f.integer("threshold", minimum=1)
        assert threshold is not None
        window = f.integer("window_seconds", minimum=1)
        if kind == "rate_limit" and window is None:
            f.fail("missing required field 'window_seconds' (required when kind is rate_limit)")
        if kind == "concurrency" and window is not None:
            f.fail("window_seconds only applies to kind rate_limit")
        return PolicySpec(
            ref=ref,
            name=f.text("name") or refs.label_from_name(refs.name_of(ref)),
            description=f.text("description"),
            action_ref=action_ref,
            kind=kind,
            threshold=threshold,
            window_seconds=window,
            method=f.choice("method", values(PolicyMethod), PolicyMethod.ENQUEUE.value),
            parameters=f.str_list("parameters"),
            tags=f.str_list("tags"),
            rel_path=f.rel,
            apply_to_manual=f.boolean("apply_to_manual", True),
        )

    def parse(self) -> ParsedPack:
        pack = self.parse_pack()
        for directory, feature in st2.UNSUPPORTED_DIRS.items():
            if self.files(directory):
                self.skip(f"{directory}/: {feature} are not supported; skipped")
        runtimes = [self.parse_runtime(p) for p in self.files("runtimes")]
        triggers = [self.parse_trigger(p) for p in self.files("triggers")]
        actions: list[ActionSpec] = []
        st2_workflows: list[WorkflowFileSpec] = []
        for path in self.files("actions"):
            parsed = self.attempt(self.parse_action, path)
            if isinstance(parsed, WorkflowFileSpec):
                st2_workflows.append(parsed)
                self.claimed.add(parsed.path)
            elif parsed is not None:
                actions.append(parsed)
        sensors: list[SensorSpec] = []
        for path in self.files("sensors"):
            found = self.attempt(lambda p: self.parse_sensor(p, {t.ref for t in triggers}), path)
            if found is not None:
                sensors.append(found[0])
                triggers.extend(t for t in found[1] if t.ref not in {known.ref for known in triggers})
        workflows = st2_workflows + self.parse_workflows()
        action_schemas: dict[str, JsonObject | None] = {a.ref: a.param_schema for a in actions}
        for workflow in workflows:
            schema = (
                workflow.parameters if workflow.parameters is not None else workflow.raw.get("parameters")
            )
            action_schemas[workflow.ref] = schema if isinstance(schema, dict) else None
        trigger_schemas = {t.ref: t.param_schema for t in triggers}
        parse_rule = partial(self.parse_rule, actions=action_schemas, triggers=trigger_schemas)
        rules = [rule for rule in (self.attempt(parse_rule, p) for p in self.files("rules")) if rule]
        policies = [self.parse_policy(p, action_schemas) for p in self.files("policies")]
        return ParsedPack(
            pack=pack,
            runtimes=runtimes,
            triggers=triggers,
            actions=actions,
            sensors=sensors,
            workflows=workflows,
            rules=rules,
            policies=policies,
            warnings=self.warnings,
            skipped=self.skipped,
        )


def parse_pack_dir(path: Path) -> ParsedPack:
    """Parse and validate the pack at ``path``.

    Raises :class:`PackNotFoundError` (400) when the directory or ``pack.yaml`` is missing and
    :class:`PackFormatError` (422) for the first malformed file, naming the file and field.
    """
    if not path.is_dir():
        raise PackNotFoundError(f"Pack directory does not exist: {path}")
    return _PackParser(path).parse()
