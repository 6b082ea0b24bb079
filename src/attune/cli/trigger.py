"""``attune trigger``: list, show, change, delete, and the webhook switch (docs/cli.md)."""

from __future__ import annotations

from typing import Annotated

import typer

from attune.cli.common import (
    bool_option,
    complete_triggers,
    delete_confirmed,
    emit_rows,
    pack_listing,
    put_update,
)
from attune.cli.state import current

app = typer.Typer(help="Triggers: the kinds of events rules listen to.", no_args_is_help=True)

RefArg = Annotated[str, typer.Argument(metavar="REF", help="Trigger ref.", autocompletion=complete_triggers)]


@app.command("list")
def list_triggers(
    pack: Annotated[str | None, typer.Option("--pack", help="Only this pack's triggers.")] = None,
) -> None:
    """List triggers."""
    state = current()
    emit_rows(
        state,
        pack_listing(state, "triggers", pack),
        empty="No triggers found",
        columns=["ID", "Ref", "Enabled", "Webhook", "Description"],
        cells=lambda r: [
            r["id"],
            r["ref"],
            r["enabled"],
            r.get("webhook_enabled", False),
            r.get("description") or "",
        ],
    )


@app.command()
def show(ref: RefArg) -> None:
    """Show a trigger, its schemas and its webhook key."""
    state = current()
    data = state.client.get(f"/triggers/{ref}")
    out = state.printer

    def human() -> None:
        out.section(f"Trigger: {data['ref']}")
        out.key_values(
            [
                ("ID", data["id"]),
                ("Ref", data["ref"]),
                ("Pack", data.get("pack_ref")),
                ("Label", data.get("label")),
                ("Description", data.get("description")),
                ("Enabled", data.get("enabled")),
                ("Webhook Enabled", data.get("webhook_enabled")),
                ("Created", data.get("created")),
                ("Updated", data.get("updated")),
            ]
        )
        if data.get("webhook_key"):
            out.section("Webhook")
            out.info(f"Key: {data['webhook_key']}")
            out.info(f"URL: {state.api_url.rstrip('/')}/api/v1/webhooks/{data['webhook_key']}")
        for title, key in (("Parameter Schema", "param_schema"), ("Output Schema", "out_schema")):
            if data.get(key):
                out.section(title)
                out.pretty_json(data[key])

    out.emit(data, human)


@app.command()
def update(
    ref: RefArg,
    label: Annotated[str | None, typer.Option("--label")] = None,
    description: Annotated[str | None, typer.Option("--description")] = None,
    enabled: Annotated[str | None, typer.Option("--enabled", help="true or false.")] = None,
) -> None:
    """Change a trigger's label, description or enabled flag."""
    put_update(
        "triggers",
        "Trigger",
        ref,
        {"label": label, "description": description, "enabled": bool_option(enabled, "--enabled")},
    )


@app.command()
def delete(
    ref: RefArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a trigger."""
    delete_confirmed("triggers", "Trigger", ref, yes)


WEBHOOK_ACTIONS = ("enable", "disable", "regenerate")


@app.command()
def webhook(
    ref: RefArg,
    action: Annotated[str, typer.Argument(help="enable, disable or regenerate.")] = "enable",
) -> None:
    """Turn a trigger's webhook on or off, or issue a new key; prints the key and the webhook URL.

    Both orders work: ``trigger webhook REF regenerate`` and ``trigger webhook regenerate REF``.
    """
    if ref in WEBHOOK_ACTIONS and action not in WEBHOOK_ACTIONS:
        ref, action = action, ref
    if action not in WEBHOOK_ACTIONS:
        raise typer.BadParameter("expected enable, disable or regenerate", param_hint="ACTION")
    state = current()
    data = state.client.post(f"/triggers/{ref}/webhooks/{action}", {})
    out = state.printer

    def human() -> None:
        key = data.get("webhook_key")
        if not (data.get("webhook_enabled") and key):
            out.success(f"Webhook of '{ref}' disabled")
            return
        if action == "regenerate":
            out.success(f"New webhook key for '{ref}' (the old URL no longer works)")
        else:
            out.success(f"Webhook of '{ref}' enabled")
        out.info(f"Key: {key}")
        out.info(f"URL: {state.api_url.rstrip('/')}/api/v1/webhooks/{key}")

    out.emit(data, human)
