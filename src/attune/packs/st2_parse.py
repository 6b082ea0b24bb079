"""Parsing StackStorm action and sensor files into Attune component specs (docs/stackstorm.md).

Called by the pack parser for files in st2's shape; ``attune.packs.st2`` holds the pure mappings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from attune.domain import refs
from attune.packs import st2
from attune.packs.manifest import ActionSpec, SensorSpec, TriggerSpec, WorkflowFileSpec
from attune.packs.parse_base import MAX_WORKFLOW_BYTES, ParserBase
from attune.packs.yamlfields import Fields, load_yaml

__all__ = ["st2_action", "st2_config_schema", "st2_sensor"]


def st2_config_schema(pack_dir: Path) -> dict[str, Any]:
    """st2 packs describe their configuration in ``config.schema.yaml`` (the same flat format)."""
    path = pack_dir / "config.schema.yaml"
    if not path.is_file():
        return {}
    document = {"conf_schema": load_yaml(path, "config.schema.yaml")}
    return Fields("config.schema.yaml", document).schema("conf_schema") or {}


def st2_action(parser: ParserBase, f: Fields, path: Path) -> ActionSpec | WorkflowFileSpec:
    """An st2 action file: a shim-run action, or the workflow its ``entry_point`` names."""
    runner = f.required_text("runner_type").strip().lower()
    st2.check_runner(runner)
    schema = f.schema("parameters")
    entry = f.text("entry_point").strip().removeprefix("actions/")
    if runner in st2.WORKFLOW_RUNNERS:
        ref = parser.component_ref(f, "workflow", path.stem)
        workflow_path = parser.dir / "actions" / entry
        rel = parser.rel(workflow_path) if workflow_path.is_file() else f"actions/{entry}"
        if not entry or not workflow_path.is_file():
            f.fail(f"entry_point '{entry}' (the {runner} workflow) not found in actions/")
        if workflow_path.stat().st_size > MAX_WORKFLOW_BYTES:
            f.fail(f"{rel}: workflow file is larger than 1 MiB")
        return WorkflowFileSpec(
            ref=ref,
            name=refs.name_of(ref),
            path=workflow_path,
            rel_path=rel,
            raw=load_yaml(workflow_path, rel),
            runner_type=runner,
            parameters=schema,
        )
    ref = parser.component_ref(f, "action", path.stem)
    if runner in ("local-shell-script", "python-script"):
        if not entry or not (parser.dir / "actions" / entry).is_file():
            parser.warnings.append(f"{f.rel}: entry_point '{entry}' not found in actions/")
    timeout = None
    if schema is not None and isinstance(schema.get("timeout"), dict):
        default = schema["timeout"].get("default")
        timeout = default + 5 if isinstance(default, int) and not isinstance(default, bool) else None
    return ActionSpec(
        ref=ref,
        label=parser.label(f, ref),
        description=f.text("description"),
        entrypoint=st2.action_entrypoint(runner, entry),
        runner_type=runner,
        runtime_ref=st2.RUNTIME_REF,
        runtime_version_constraint=None,
        param_schema=schema,
        out_schema=f.schema("output_schema"),
        parameter_delivery="stdin",
        parameter_format="json",
        output_format="json",
        timeout_seconds=timeout,
    )


def st2_sensor(parser: ParserBase, f: Fields, path: Path) -> tuple[SensorSpec, list[TriggerSpec]]:
    """An st2 sensor (Python class, inline trigger types) and the trigger types it declares."""
    class_name = f.required_text("class_name")
    entry = f.required_text("entry_point").strip().removeprefix("sensors/")
    if not (parser.dir / "sensors" / entry).is_file():
        f.fail(f"entry_point '{entry}' not found in sensors/")
    declared = st2.sensor_triggers(f.doc, parser.pack_ref)
    triggers: list[TriggerSpec] = []
    for trigger in declared:
        if not refs.is_component_ref(trigger["ref"]):
            f.fail(f"trigger type '{trigger['ref']}' must be '<pack>.<name>': lowercase with one dot")
        payload = trigger["payload_schema"]
        params = trigger["parameters_schema"]
        triggers.append(
            TriggerSpec(
                ref=trigger["ref"],
                label=refs.label_from_name(refs.name_of(trigger["ref"])),
                description=str(trigger["description"]),
                enabled=True,
                param_schema=params if isinstance(params, dict) else None,
                out_schema=payload if isinstance(payload, dict) else None,
            )
        )
    if not triggers:
        f.fail("trigger_types must declare at least one trigger type ({name, payload_schema})")
    name_doc = Fields(f.rel, {"name": f.doc.get("name") or path.stem.lower()})
    ref = parser.component_ref(name_doc, "sensor", path.stem.lower())
    poll = f.doc.get("poll_interval")
    config: dict[str, Any] = {"st2_class_name": class_name}
    if isinstance(poll, int | float) and not isinstance(poll, bool) and poll > 0:
        config["poll_interval"] = poll
    sensor = SensorSpec(
        ref=ref,
        label=parser.label(f, ref) if f.doc.get("label") else refs.label_from_name(refs.name_of(ref)),
        description=f.text("description"),
        entrypoint=entry,
        runtime_ref=st2.RUNTIME_REF,
        runtime_version_constraint=None,
        trigger_refs=[t.ref for t in triggers],
        param_schema=None,
        config=config,
        enabled=f.boolean("enabled", True),
    )
    return sensor, triggers
