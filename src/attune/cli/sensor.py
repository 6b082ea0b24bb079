"""``attune sensor``: list, show, enable and disable sensors (docs/cli.md)."""

from __future__ import annotations

from typing import Annotated

import typer

from attune.cli.common import complete_sensors, emit_rows, pack_listing, toggle
from attune.cli.state import current

app = typer.Typer(
    help="Run the sensor service (no subcommand), or list, show, enable and disable sensors on a server."
)

RefArg = Annotated[str, typer.Argument(metavar="REF", help="Sensor ref.", autocompletion=complete_sensors)]


@app.command("list")
def list_sensors(
    pack: Annotated[str | None, typer.Option("--pack", help="Only this pack's sensors.")] = None,
) -> None:
    """List sensors."""
    state = current()
    emit_rows(
        state,
        pack_listing(state, "sensors", pack),
        empty="No sensors found",
        columns=["ID", "Ref", "Trigger", "Enabled", "Description"],
        cells=lambda r: [r["id"], r["ref"], r.get("trigger_ref"), r["enabled"], r.get("description") or ""],
    )


@app.command()
def show(ref: RefArg) -> None:
    """Show a sensor."""
    state = current()
    data = state.client.get(f"/sensors/{ref}")
    out = state.printer

    def human() -> None:
        out.section(f"Sensor: {data['ref']}")
        out.key_values(
            [
                ("ID", data["id"]),
                ("Ref", data["ref"]),
                ("Pack", data.get("pack_ref")),
                ("Label", data.get("label")),
                ("Description", data.get("description")),
                ("Trigger", data.get("trigger_ref")),
                ("Entry Point", data.get("entrypoint") or "N/A"),
                ("Runtime", data.get("runtime_ref")),
                ("Enabled", data.get("enabled")),
                ("Created", data.get("created")),
                ("Updated", data.get("updated")),
            ]
        )
        if data.get("param_schema"):
            out.section("Parameter Schema")
            out.pretty_json(data["param_schema"])

    out.emit(data, human)


@app.command()
def enable(ref: RefArg) -> None:
    """Enable a sensor."""
    toggle("sensors", "Sensor", ref, "enable")


@app.command()
def disable(ref: RefArg) -> None:
    """Disable a sensor."""
    toggle("sensors", "Sensor", ref, "disable")
