"""``attune rule``: list, create (from flags or a YAML file), change, enable, disable."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from attune.cli.common import (
    bool_option,
    complete_rules,
    delete_confirmed,
    emit_rows,
    pack_listing,
    parse_json_option,
    parse_pairs,
    put_update,
    toggle,
)
from attune.cli.errors import CliError
from attune.cli.state import current
from attune.domain import safe_yaml

app = typer.Typer(help="Rules: when a trigger fires, run an action.", no_args_is_help=True)

RefArg = Annotated[
    str, typer.Argument(metavar="REF", help="Rule ref (pack.name).", autocompletion=complete_rules)
]
LIST_FIELDS = ("id", "ref", "pack_ref", "label", "description", "trigger_ref", "action_ref", "enabled")


@app.command("list")
def list_rules(
    pack: Annotated[str | None, typer.Option("--pack", help="Only this pack's rules.")] = None,
    enabled: Annotated[str | None, typer.Option("--enabled", "-e", help="true or false.")] = None,
) -> None:
    """List rules."""
    state = current()
    want = bool_option(enabled, "--enabled")
    rows = pack_listing(state, "rules", pack)
    if want is not None:
        rows = [r for r in rows if bool(r.get("enabled")) is want]
    emit_rows(
        state,
        rows,
        empty="No rules found",
        columns=["ID", "Ref", "Trigger", "Action", "Enabled"],
        cells=lambda r: [r["id"], r["ref"], r["trigger_ref"], r["action_ref"], r["enabled"]],
        fields=LIST_FIELDS,
    )


@app.command()
def show(ref: RefArg) -> None:
    """Show a rule with its conditions and parameters."""
    state = current()
    data = state.client.get(f"/rules/{ref}")
    out = state.printer

    def human() -> None:
        out.section(f"Rule: {data['ref']}")
        out.key_values(
            [
                ("ID", data["id"]),
                ("Ref", data["ref"]),
                ("Pack", data.get("pack_ref")),
                ("Label", data.get("label")),
                ("Description", data.get("description")),
                ("Trigger", data.get("trigger_ref")),
                ("Action", data.get("action_ref")),
                ("Enabled", data.get("enabled")),
                ("Created", data.get("created")),
                ("Updated", data.get("updated")),
            ]
        )
        for title, key in (
            ("Conditions", "conditions"),
            ("Action Parameters", "action_params"),
            ("Trigger Parameters", "trigger_params"),
        ):
            if data.get(key):
                out.section(title)
                out.pretty_json(data[key])

    out.emit(data, human)


def rule_from_file(path: Path) -> dict[str, Any]:
    """A CreateRule body from a rule YAML file (docs/packs.md field names; a few aliases accepted)."""
    try:
        doc = safe_yaml.load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CliError(f"Cannot read {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise CliError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise CliError(f"{path} must contain a mapping")
    body = dict(doc)
    action = body.pop("action", None)
    if isinstance(action, dict):
        body.setdefault("action_ref", action.get("ref"))
        body.setdefault("action_params", action.get("parameters") or {})
    elif action is not None:
        body.setdefault("action_ref", action)
    trigger = body.pop("trigger", None)
    if isinstance(trigger, dict):
        body.setdefault("trigger_ref", trigger.get("type") or trigger.get("ref"))
        body.setdefault("trigger_params", trigger.get("parameters") or {})
    elif trigger is not None:
        body.setdefault("trigger_ref", trigger)
    if "criteria" in body:
        body.setdefault("conditions", body.pop("criteria"))
    if "pack" in body:
        body.setdefault("pack_ref", body.pop("pack"))
    ref = body.get("ref")
    if "name" in body and not ref and body.get("pack_ref"):
        body["ref"] = f"{body['pack_ref']}.{body['name']}"
    if body.get("ref") and "pack_ref" not in body:
        body["pack_ref"] = str(body["ref"]).split(".", 1)[0]
    body.setdefault("label", body.pop("name", None) or str(body.get("ref", "")).split(".")[-1])
    body.pop("name", None)
    missing = [k for k in ("ref", "trigger_ref", "action_ref") if not body.get(k)]
    if missing:
        raise CliError(f"{path}: missing {', '.join(missing)}")
    return body


@app.command()
def create(
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="Rule YAML file (ref, trigger_ref, action_ref, …).")
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", "-n", help="Rule name (ref becomes PACK.NAME).")
    ] = None,
    pack: Annotated[str | None, typer.Option("--pack", help="Pack of the rule.")] = None,
    trigger: Annotated[str | None, typer.Option("--trigger", "-t", help="Trigger ref.")] = None,
    action: Annotated[str | None, typer.Option("--action", "-a", help="Action ref.")] = None,
    description: Annotated[str | None, typer.Option("--description", "-d")] = None,
    criteria: Annotated[str | None, typer.Option("--criteria", help="Conditions as JSON.")] = None,
    action_params: Annotated[
        str | None, typer.Option("--action-params", help="Action parameters JSON.")
    ] = None,
    trigger_params: Annotated[
        str | None,
        typer.Option(
            "--trigger-params", help='Trigger parameters JSON (e.g. \'{"unit": "seconds", "delta": 30}\').'
        ),
    ] = None,
    trigger_param: Annotated[
        list[str] | None,
        typer.Option("--trigger-param", help="One trigger parameter as KEY=VALUE (repeatable)."),
    ] = None,
    enabled: Annotated[
        bool,
        typer.Option("--enabled/--disabled", help="Enable the rule at once (also --enabled true|false)."),
    ] = False,
) -> None:
    """Create a rule from a YAML file (-f) or from flags (--name, --pack, --trigger, --action)."""
    state = current()
    if file is not None:
        body = rule_from_file(file)
    else:
        given = {"--name": name, "--pack": pack, "--trigger": trigger, "--action": action}
        missing = [flag for flag, value in given.items() if not value]
        if missing:
            raise typer.BadParameter(f"missing {', '.join(missing)} (or give --file)")
        body = {
            "ref": f"{pack}.{name}",
            "pack_ref": pack,
            "label": name,
            "description": description or name,
            "trigger_ref": trigger,
            "action_ref": action,
            "conditions": parse_json_option(criteria, "--criteria") or {},
            "action_params": parse_json_option(action_params, "--action-params") or {},
            "trigger_params": _trigger_params(trigger_params, trigger_param),
            "enabled": enabled,
        }
    data = state.client.post("/rules", body)
    out = state.printer
    out.report(
        data,
        f"Rule '{data['ref']}' created successfully",
        f"ID: {data['id']}",
        f"Enabled: {str(data['enabled']).lower()}",
    )


def _trigger_params(text: str | None, pairs: list[str] | None) -> dict[str, Any]:
    """``--trigger-params JSON`` merged with ``--trigger-param K=V`` items (the pairs win)."""
    params = parse_json_option(text, "--trigger-params") or {}
    if not isinstance(params, dict):
        raise CliError("--trigger-params must be a JSON object")
    return {**params, **parse_pairs(pairs or [], what="trigger parameter")}


@app.command()
def update(
    ref: RefArg,
    label: Annotated[str | None, typer.Option("--label")] = None,
    description: Annotated[str | None, typer.Option("--description")] = None,
    conditions: Annotated[str | None, typer.Option("--conditions", help="JSON.")] = None,
    action_params: Annotated[str | None, typer.Option("--action-params", help="JSON.")] = None,
    trigger_params: Annotated[str | None, typer.Option("--trigger-params", help="JSON.")] = None,
    enabled: Annotated[str | None, typer.Option("--enabled", help="true or false.")] = None,
) -> None:
    """Change fields of a rule."""
    put_update(
        "rules",
        "Rule",
        ref,
        {
            "label": label,
            "description": description,
            "conditions": parse_json_option(conditions, "--conditions"),
            "action_params": parse_json_option(action_params, "--action-params"),
            "trigger_params": parse_json_option(trigger_params, "--trigger-params"),
            "enabled": bool_option(enabled, "--enabled"),
        },
    )


@app.command()
def enable(ref: RefArg) -> None:
    """Enable a rule."""
    toggle("rules", "Rule", ref, "enable")


@app.command()
def disable(ref: RefArg) -> None:
    """Disable a rule (its trigger no longer runs the action)."""
    toggle("rules", "Rule", ref, "disable")


@app.command()
def delete(
    ref: RefArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a rule."""
    delete_confirmed("rules", "Rule", ref, yes, cancelled="Deletion cancelled")
