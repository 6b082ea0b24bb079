"""``attune permission``: permission sets and who holds them (docs/security.md "Permission sets").

A grant on the command line is JSON (``{"resource": "rules", "actions": ["read"]}``) or the
shorthand ``RESOURCE:ACTION[,ACTION…][@packs=P1,P2][@owner=self]`` (``rules:read,update@packs=ops``).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from attune.cli.common import delete_confirmed
from attune.cli.errors import CliError
from attune.cli.state import current
from attune.cli.user import identity_id

app = typer.Typer(help="Permission sets: grant and revoke rights.", no_args_is_help=True)
sets_app = typer.Typer(help="Permission sets (bundles of grants).", no_args_is_help=True)
app.add_typer(sets_app, name="sets")


def parse_grant(text: str) -> dict[str, Any]:
    """One grant from JSON or the ``RESOURCE:ACTIONS[@packs=…][@owner=self]`` shorthand."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            value = json.loads(stripped)
        except ValueError as exc:
            raise CliError(f"--grant is not valid JSON: {exc}") from exc
        if not isinstance(value, dict):
            raise CliError("--grant JSON must be an object")
        return value
    head, *options = stripped.split("@")
    resource, sep, actions = head.partition(":")
    if not sep or not resource or not actions:
        raise CliError(f"Invalid grant '{text}'. Expected RESOURCE:ACTION[,ACTION][@packs=P,Q][@owner=self]")
    constraints: dict[str, Any] = {}
    for option in options:
        name, _, value = option.partition("=")
        if name == "packs" and value:
            constraints["packs"] = [p for p in value.split(",") if p]
        elif name == "owner" and value == "self":
            constraints["owner"] = "self"
        else:
            raise CliError(f"Invalid grant constraint '{option}' (packs=P,Q or owner=self)")
    return {"resource": resource, "actions": [a for a in actions.split(",") if a], "constraints": constraints}


def _grant_rows(grants: list[dict[str, Any]]) -> list[list[Any]]:
    return [[g["resource"], ", ".join(g["actions"]), json.dumps(g.get("constraints") or {})] for g in grants]


@sets_app.command("list")
def list_sets() -> None:
    """List permission sets (the built-in core.admin, core.operator and core.viewer included)."""
    state = current()
    rows: list[dict[str, Any]] = state.client.get_all("/permissions/sets")
    out = state.printer

    def human() -> None:
        out.table(
            ["Ref", "Label", "Grants", "Description"],
            [[r["ref"], r.get("label"), len(r.get("grants") or []), r.get("description")] for r in rows],
        )

    out.emit(rows, human)


@sets_app.command("show")
def show_set(ref: Annotated[str, typer.Argument(metavar="REF")]) -> None:
    """Show a permission set and its grants."""
    state = current()
    data = state.client.get(f"/permissions/sets/{ref}")
    out = state.printer

    def human() -> None:
        out.section(f"Permission set: {data['ref']}")
        out.key_values([("Label", data.get("label")), ("Description", data.get("description"))])
        out.table(["Resource", "Actions", "Constraints"], _grant_rows(data.get("grants") or []))

    out.emit(data, human)


@sets_app.command("create")
def create_set(
    ref: Annotated[str, typer.Argument(metavar="REF", help="<pack>.<name>, e.g. ops.deployers")],
    grant: Annotated[
        list[str], typer.Option("--grant", "-g", help="A grant (JSON or shorthand); repeatable.")
    ],
    label: Annotated[str | None, typer.Option("--label")] = None,
    description: Annotated[str | None, typer.Option("--description")] = None,
) -> None:
    """Create a permission set."""
    state = current()
    body = {"ref": ref, "label": label, "description": description, "grants": [parse_grant(g) for g in grant]}
    data = state.client.post("/permissions/sets", body)
    out = state.printer
    out.emit(data, lambda: out.success(f"Permission set '{ref}' created"))


@sets_app.command("delete")
def delete_set(
    ref: Annotated[str, typer.Argument(metavar="REF")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
) -> None:
    """Delete a permission set (its assignments go with it)."""
    delete_confirmed("permissions/sets", "Permission set", ref, yes)


@app.command()
def grant(
    login: Annotated[str, typer.Argument(metavar="LOGIN", help="Login or id.")],
    permission_set: Annotated[str, typer.Argument(metavar="SET", help="e.g. core.viewer")],
) -> None:
    """Give an identity a permission set."""
    state = current()
    body = {"identity_id": identity_id(login), "permission_set_ref": permission_set}
    data = state.client.post("/permissions/assignments", body)
    out = state.printer
    out.emit(data, lambda: out.success(f"'{login}' now holds {permission_set}"))


@app.command()
def revoke(
    login: Annotated[str, typer.Argument(metavar="LOGIN", help="Login or id.")],
    permission_set: Annotated[str, typer.Argument(metavar="SET")],
) -> None:
    """Take a permission set away from an identity."""
    state = current()
    ident = identity_id(login)
    held = state.client.get("/permissions/assignments", {"identity_id": ident}) or []
    matching = [row for row in held if row.get("permission_set_ref") == permission_set]
    if not matching:
        raise CliError(f"'{login}' does not hold {permission_set}")
    state.client.delete(f"/permissions/assignments/{matching[0]['id']}")
    out = state.printer
    out.emit(
        {"message": "Permission set revoked"},
        lambda: out.success(f"'{login}' no longer holds {permission_set}"),
    )
