"""StackStorm pack content read as it is (docs/stackstorm.md): manifest, actions, rules, sensors.

Pure translations from st2's YAML shapes to Attune's: ``pack.yaml`` ``name`` is the ref; action
runners map to the ``core.stackstorm`` runtime (``<runner>:<entry point>`` entrypoints) or to a
workflow (``orquesta``, ``action-chain``); rule ``trigger``/``criteria``/``action`` become
``trigger_ref``/``conditions``/``action_ref``. What Attune does not run (remote and WinRM runners,
Mistral, ChatOps aliases) raises :class:`Unsupported`, which the parser turns into a skipped file
with a warning naming the feature.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "RUNTIME_REF",
    "SHIM_RUNNERS",
    "UNSUPPORTED_DIRS",
    "WORKFLOW_RUNNERS",
    "Unsupported",
    "action_entrypoint",
    "check_runner",
    "criteria_to_conditions",
    "is_st2_action",
    "is_st2_manifest",
    "is_st2_rule",
    "manifest_ref",
    "rule_fields",
    "sensor_triggers",
]

RUNTIME_REF = "core.stackstorm"
SHIM_RUNNERS = frozenset(
    {
        "local-shell-cmd",
        "local-shell-script",
        "python-script",
        "http-request",
        "noop",
        "inquirer",
        "attune-builtin",
    }
)
"""st2 runners run by the shim; ``attune-builtin`` serves the st2 core actions that are no command."""
WORKFLOW_RUNNERS = frozenset({"orquesta", "action-chain"})
_UNSUPPORTED_RUNNERS = {
    "remote-shell-cmd": "remote commands over SSH (remote-shell-cmd)",
    "remote-shell-script": "remote scripts over SSH (remote-shell-script)",
    "winrm-cmd": "WinRM (winrm-cmd)",
    "winrm-ps-cmd": "WinRM PowerShell (winrm-ps-cmd)",
    "winrm-ps-script": "WinRM PowerShell scripts (winrm-ps-script)",
    "windows-cmd": "Windows commands (windows-cmd)",
    "windows-script": "Windows scripts (windows-script)",
    "mistral-v2": "Mistral workflows (mistral-v2; rewrite them in Orquesta)",
    "cloudslang": "CloudSlang (cloudslang)",
    "announcement": "announcements (announcement)",
}
UNSUPPORTED_DIRS = {"aliases": "ChatOps action aliases"}
"""Pack directories Attune does not load, with the feature they hold."""

_OPERATORS = {
    "equals": "equals",
    "eq": "equals",
    "nequals": "not_equals",
    "neq": "not_equals",
    "iequals": "iequals",
    "ieq": "iequals",
    "contains": "contains",
    "icontains": "icontains",
    "ncontains": "ncontains",
    "incontains": "incontains",
    "startswith": "startswith",
    "istartswith": "istartswith",
    "endswith": "endswith",
    "iendswith": "iendswith",
    "matchregex": "matchregex",
    "regex": "regex",
    "iregex": "iregex",
    "matchwildcard": "matchwildcard",
    "lessthan": "lt",
    "lt": "lt",
    "greaterthan": "gt",
    "gt": "gt",
    "timediff_lt": "timediff_lt",
    "td_lt": "timediff_lt",
    "timediff_gt": "timediff_gt",
    "td_gt": "timediff_gt",
    "timediff_nlt": "timediff_nlt",
    "td_nlt": "timediff_nlt",
    "timediff_ngt": "timediff_ngt",
    "td_ngt": "timediff_ngt",
    "exists": "exists",
    "nexists": "nexists",
    "inside": "inside",
    "in": "inside",
    "ninside": "ninside",
    "nin": "ninside",
    "search": "search",
}
"""st2 criteria operators → Attune condition operators (docs/rules.md)."""


class Unsupported(Exception):
    """A file uses something Attune does not run; the file is skipped with this message."""


def is_st2_manifest(doc: Mapping[str, Any]) -> bool:
    """A StackStorm ``pack.yaml``: ``stackstorm_version`` or a ``name`` without a ``ref``."""
    return "stackstorm_version" in doc or ("ref" not in doc and isinstance(doc.get("name"), str))


def manifest_ref(doc: Mapping[str, Any]) -> Any:
    """st2: the pack's ref is ``ref`` when given, else ``name``."""
    return doc.get("ref") if doc.get("ref") is not None else doc.get("name")


def is_st2_action(doc: Mapping[str, Any]) -> bool:
    """An action file whose runner is one of StackStorm's."""
    runner = str(doc.get("runner_type") or "").strip().lower()
    return runner in SHIM_RUNNERS or runner in WORKFLOW_RUNNERS or runner in _UNSUPPORTED_RUNNERS


def check_runner(runner: str) -> None:
    """Raise :class:`Unsupported` for a runner Attune does not run."""
    feature = _UNSUPPORTED_RUNNERS.get(runner.strip().lower())
    if feature is not None:
        raise Unsupported(f"{feature} is not supported; action skipped")


def action_entrypoint(runner: str, entry_point: str) -> str:
    """The stored entrypoint of an st2 action: ``<runner>:<entry point relative to actions/>``."""
    entry = entry_point.strip().removeprefix("actions/")
    return f"{runner.strip().lower()}:{entry}"


def is_st2_rule(doc: Mapping[str, Any]) -> bool:
    """A rule in st2's shape: ``trigger``/``action`` mappings (and maybe ``criteria``)."""
    return isinstance(doc.get("trigger"), Mapping) or isinstance(doc.get("action"), Mapping)


def criteria_to_conditions(criteria: Any, *, where: str = "criteria") -> list[dict[str, Any]]:
    """``{trigger.a.b: {type, pattern}}`` → ``[{field: a.b, operator, value}]`` (all must hold).

    ``search`` becomes ``{field, operator: search, value: {condition, conditions}}`` whose item
    conditions keep st2's ``item.`` paths (docs/stackstorm.md#rules).
    """
    if criteria is None:
        return []
    if not isinstance(criteria, Mapping):
        raise ValueError(f"{where} must be a mapping of trigger field to {{type, pattern}}")
    conditions: list[dict[str, Any]] = []
    for field, test in criteria.items():
        if not isinstance(test, Mapping):
            raise ValueError(f"{where}.{field} must be a mapping with type and pattern")
        kind = str(test.get("type") or "equals").strip().lower()
        operator = _OPERATORS.get(kind)
        if operator is None:
            raise ValueError(f"{where}.{field}: unknown operator {kind!r}")
        path = str(field).strip()
        path = path.removeprefix("trigger.")
        value: Any = test.get("pattern")
        if operator == "search":
            value = {
                "condition": test.get("condition"),
                "conditions": criteria_to_conditions(value, where=f"{where}.{field}.pattern"),
            }
        conditions.append({"field": path, "operator": operator, "value": value})
    return conditions


def rule_fields(doc: Mapping[str, Any], pack_ref: str) -> dict[str, Any]:
    """An st2 rule as Attune rule fields (``ref``, ``trigger_ref``, ``conditions``, …)."""
    raw_trigger, raw_action = doc.get("trigger"), doc.get("action")
    trigger: Mapping[str, Any] = raw_trigger if isinstance(raw_trigger, Mapping) else {}
    action: Mapping[str, Any] = raw_action if isinstance(raw_action, Mapping) else {}
    trigger_type = str(trigger.get("type") or "")
    if trigger_type.startswith("core.st2."):
        raise Unsupported(
            f"the StackStorm trigger {trigger_type} is not supported (use Attune's timers or webhooks); "
            "rule skipped"
        )
    fields: dict[str, Any] = {
        "trigger_ref": trigger.get("type"),
        "trigger_params": trigger.get("parameters") or {},
        "action_ref": action.get("ref"),
        "action_params": action.get("parameters") or {},
        "conditions": criteria_to_conditions(doc.get("criteria")),
        "enabled": doc.get("enabled", True),
        "description": doc.get("description") or "",
    }
    name = doc.get("name")
    if doc.get("ref") is None and isinstance(name, str):
        fields["ref"] = f"{pack_ref}.{name}"
    else:
        fields["ref"] = doc.get("ref")
    return fields


def sensor_triggers(doc: Mapping[str, Any], pack_ref: str) -> list[dict[str, Any]]:
    """Trigger types an st2 sensor declares inline (``trigger_types: [{name, payload_schema}]``)."""
    found: list[dict[str, Any]] = []
    for entry in doc.get("trigger_types") or []:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
            continue
        name = str(entry["name"])
        found.append(
            {
                "ref": name if "." in name else f"{pack_ref}.{name}",
                "description": entry.get("description") or "",
                "payload_schema": entry.get("payload_schema"),
                "parameters_schema": entry.get("parameters_schema"),
            }
        )
    return found
