"""StackStorm pack content read as it is (docs/stackstorm.md): manifest, actions, rules, sensors.

Pure translations from st2's YAML shapes to Attune's: ``pack.yaml`` ``name`` is the ref; action
runners map to the ``core.stackstorm`` runtime (``<runner>:<entry point>`` entrypoints) or to a
workflow (``orquesta``, ``action-chain``); rule ``trigger``/``criteria``/``action`` become
``trigger_ref``/``conditions``/``action_ref``. What Attune does not run (remote and WinRM runners,
Mistral, ChatOps aliases) raises :class:`Unsupported`, which the parser turns into a skipped file
with a warning naming the feature.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from croniter import croniter

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
    "st2_trigger",
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


_INTERVAL_UNITS = {"seconds": ("seconds", 1), "minutes": ("minutes", 1), "hours": ("hours", 1)}
_INTERVAL_UNITS |= {"days": ("hours", 24), "weeks": ("hours", 168)}
"""st2 ``IntervalTimer`` units → Attune's (which stop at hours) and the factor on ``delta``."""
_CRON_FIELDS = ("second", "minute", "hour", "day", "month", "day_of_week")
_APS_ORDER = ("second", "minute", "hour", "day_of_week", "day", "month")
"""APScheduler's fields from the finest up: those finer than the finest given take their minimum."""
_APS_WEEKDAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")
"""APScheduler (st2's cron) numbers weekdays from Monday = 0; cron from Sunday = 0, so use names."""
_WEBHOOK_SKIP = (
    "the StackStorm trigger core.st2.webhook is not mapped: st2 serves it at "
    "/api/v1/webhooks/<url> with the raw body as trigger.body, while an Attune webhook belongs to a "
    "trigger, has a generated key and takes {payload, headers}; declare a trigger in the pack, "
    "enable its webhook (docs/webhooks.md) and read trigger.<field> instead of trigger.body.<field>; "
    "rule skipped"
)


def st2_trigger(trigger_type: str, params: Any) -> tuple[str, dict[str, Any]]:
    """A ``core.st2.*`` trigger and its parameters as Attune's timer trigger (docs/stackstorm.md).

    Raises :class:`Unsupported` with the reason for what cannot be mapped.
    """
    values: Mapping[str, Any] = params if isinstance(params, Mapping) else {}
    kind = trigger_type.removeprefix("core.st2.").lower()
    if kind == "intervaltimer":
        unit, factor = _INTERVAL_UNITS.get(str(values.get("unit") or "seconds").lower(), (None, 0))
        delta = values.get("delta")
        if unit is None or isinstance(delta, bool) or not isinstance(delta, int) or delta < 1:
            raise Unsupported(
                f"core.st2.IntervalTimer needs a whole delta ≥ 1 and a unit of seconds, minutes, hours, "
                f"days or weeks (got {dict(values)!r}); rule skipped"
            )
        return "core.intervaltimer", {"unit": unit, "interval": delta * factor}
    if kind == "crontimer":
        return "core.crontimer", _cron_params(values)
    if kind == "datetimer":
        date = values.get("date")
        if not isinstance(date, str) or not date.strip():
            raise Unsupported("core.st2.DateTimer needs a 'date'; rule skipped")
        mapped = {"fire_at": date.strip().replace(" ", "T", 1)}
        if values.get("timezone"):
            mapped["timezone"] = str(values["timezone"])
        return "core.datetimetimer", mapped
    if kind == "webhook":
        raise Unsupported(_WEBHOOK_SKIP)
    raise Unsupported(f"the StackStorm trigger {trigger_type} has no Attune equivalent; rule skipped")


def _cron_params(values: Mapping[str, Any]) -> dict[str, Any]:
    """st2 ``CronTimer`` (APScheduler fields) → a 6-field cron expression.

    As in APScheduler, fields coarser than the finest one given default to ``*`` and finer ones to
    their minimum (``day_of_week`` to ``*``); with no field at all every field is ``*``.
    """
    for field in ("year", "week"):
        if values.get(field) not in (None, "*"):
            raise Unsupported(
                f"core.st2.CronTimer '{field}' has no field in Attune's 6-field cron; rule skipped"
            )
    given = [index for index, name in enumerate(_APS_ORDER) if values.get(name) is not None]
    finest = min(given, default=-1)  # nothing given: every field is "*", as in APScheduler
    chosen: dict[str, str] = {}
    for index, name in enumerate(_APS_ORDER):
        value = values.get(name)
        if value is not None:
            text = str(value).strip()
            chosen[name] = _weekday_names(text) if name == "day_of_week" else text
        elif index > finest or name == "day_of_week":
            chosen[name] = "*"
        else:
            chosen[name] = "1" if name in ("day", "month") else "0"
    parts = [chosen[name] for name in _CRON_FIELDS]
    expression = " ".join(parts)
    if not croniter.is_valid(expression, second_at_beginning=True):
        raise Unsupported(
            f"core.st2.CronTimer {dict(values)!r} gives the cron expression {expression!r}, which Attune "
            "cannot evaluate; rule skipped"
        )
    mapped: dict[str, Any] = {"expression": expression}
    if values.get("timezone"):
        mapped["timezone"] = str(values["timezone"])
    return mapped


def _weekday_names(text: str) -> str:
    return re.sub(r"\b[0-6]\b", lambda m: _APS_WEEKDAYS[int(m.group())], text)


def rule_fields(doc: Mapping[str, Any], pack_ref: str) -> dict[str, Any]:
    """An st2 rule as Attune rule fields (``ref``, ``trigger_ref``, ``conditions``, …)."""
    raw_trigger, raw_action = doc.get("trigger"), doc.get("action")
    trigger: Mapping[str, Any] = raw_trigger if isinstance(raw_trigger, Mapping) else {}
    action: Mapping[str, Any] = raw_action if isinstance(raw_action, Mapping) else {}
    trigger_ref: Any = trigger.get("type")
    trigger_params: Any = trigger.get("parameters") or {}
    if isinstance(trigger_ref, str) and trigger_ref.startswith("core.st2."):
        trigger_ref, trigger_params = st2_trigger(trigger_ref, trigger_params)
    fields: dict[str, Any] = {
        "trigger_ref": trigger_ref,
        "trigger_params": trigger_params,
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
