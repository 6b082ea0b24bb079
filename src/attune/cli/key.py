"""``attune key``: secrets and configuration values (docs/api.md).

A secret is never echoed: ``key set`` reads it from a hidden prompt or stdin when it is not given,
and every output masks values of encrypted keys unless ``key show --decrypt`` asks for them.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from typing import Annotated, Any

import typer

from attune.cli.common import delete_confirmed
from attune.cli.errors import ApiError, CliError
from attune.cli.state import current

app = typer.Typer(help="Secrets and configuration values stored on the server.", no_args_is_help=True)

MASK = "********"


class OwnerType(StrEnum):
    system = "system"
    identity = "identity"
    pack = "pack"
    action = "action"
    sensor = "sensor"


def masked(data: dict[str, Any], reveal: bool = False) -> dict[str, Any]:
    if data.get("encrypted") and "value" in data and not reveal:
        return {**data, "value": MASK}
    return data


@app.command("list")
def list_keys(
    owner_type: Annotated[
        OwnerType | None, typer.Option("--owner-type", help="Only this owner type.")
    ] = None,
    owner: Annotated[str | None, typer.Option("--owner", help="Only this owner (exact).")] = None,
) -> None:
    """List keys (values are not shown)."""
    state = current()
    params = {"owner_type": owner_type.value if owner_type else None, "owner": owner, "per_page": 100}
    rows: list[dict[str, Any]] = state.client.get("/keys", params)
    out = state.printer

    def human() -> None:
        if not rows:
            out.info("No keys found")
            return
        out.table(
            ["ID", "Ref", "Owner Type", "Owner", "Encrypted", "Created"],
            [
                [r["id"], r["ref"], r["owner_type"], r.get("owner"), r["encrypted"], r["created"]]
                for r in rows
            ],
        )

    out.emit(rows, human)


@app.command()
def show(
    ref: Annotated[str, typer.Argument(metavar="REF")],
    decrypt: Annotated[bool, typer.Option("--decrypt", help="Show the value of an encrypted key.")] = False,
) -> None:
    """Show a key; an encrypted value stays masked unless --decrypt."""
    state = current()
    data = masked(state.client.get(f"/keys/{ref}"), reveal=decrypt)
    out = state.printer

    def human() -> None:
        out.section(f"Key: {data['ref']}")
        out.key_values(
            [
                ("ID", data["id"]),
                ("Ref", data["ref"]),
                ("Name", data.get("name")),
                ("Owner Type", data.get("owner_type")),
                ("Owner", data.get("owner")),
                ("Encrypted", data.get("encrypted")),
                ("Value", data.get("value")),
                ("Created", data.get("created")),
                ("Updated", data.get("updated")),
            ]
        )

    out.emit(data, human)


def _read_value(ref: str) -> str:
    if sys.stdin.isatty():
        value: str = typer.prompt(f"Value for {ref}", hide_input=True, confirmation_prompt=True)
        return value
    return sys.stdin.read().rstrip("\n")


@app.command("set")
def set_key(
    ref: Annotated[str, typer.Argument(metavar="REF", help="Key ref, e.g. mypack.api_token.")],
    value: Annotated[
        str | None, typer.Argument(help="The value; omit it to type it hidden or pipe it on stdin.")
    ] = None,
    encrypt: Annotated[bool, typer.Option("--encrypt/--plain", help="Store encrypted (the default).")] = True,
    owner_type: Annotated[
        OwnerType, typer.Option("--owner-type", help="Who owns the key.")
    ] = OwnerType.system,
    owner: Annotated[
        str | None,
        typer.Option("--owner", help="Owner: a pack, action or sensor ref; an identity's login (or id)."),
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="Name (default: the last part of the ref).")
    ] = None,
) -> None:
    """Create a key or replace its value. The value is never printed back."""
    state = current()
    secret = value if value is not None else _read_value(ref)
    if not secret:
        raise CliError("The value must not be empty")
    client = state.client
    try:
        client.get(f"/keys/{ref}")
        exists = True
    except ApiError as exc:
        if exc.status != 404:
            raise
        exists = False
    if exists:
        body: dict[str, Any] = {"value": secret, "encrypted": encrypt}
        if name:
            body["name"] = name
        data = client.put(f"/keys/{ref}", body)
    else:
        body = {
            "ref": ref,
            "name": name or ref.rsplit(".", 1)[-1],
            "value": secret,
            "encrypted": encrypt,
            "owner_type": owner_type.value,
        }
        if owner and owner_type is OwnerType.identity:
            if owner.isdigit():
                body["owner_identity"] = int(owner)
            else:
                body["owner_identity_login"] = owner
        elif owner and owner_type is not OwnerType.system:
            body[f"owner_{owner_type.value}_ref"] = owner
        data = client.post("/keys", body)
    # The value was just typed by the user: never print it back, encrypted or not.
    data = {**data, "value": MASK}
    out = state.printer
    verb = "updated" if exists else "created"
    out.emit(
        data,
        lambda: out.success(f"Key '{ref}' {verb}" + (" (encrypted)" if data.get("encrypted") else "")),
    )


@app.command()
def delete(
    ref: Annotated[str, typer.Argument(metavar="REF")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a key."""
    delete_confirmed("keys", "Key", ref, yes, done=f"Key '{ref}' deleted")
