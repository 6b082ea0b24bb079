"""``attune runtime``: list and show the runtimes actions run on (docs/cli.md)."""

from __future__ import annotations

from typing import Annotated

import typer

from attune.cli.common import emit_rows, pack_listing
from attune.cli.state import current

app = typer.Typer(help="Runtimes: where actions run (shell, Python, Node.js, native).", no_args_is_help=True)

RefArg = Annotated[str, typer.Argument(metavar="REF", help="Runtime ref, e.g. core.python.")]


@app.command("list")
def list_runtimes(
    pack: Annotated[str | None, typer.Option("--pack", help="Only this pack's runtimes.")] = None,
) -> None:
    """List runtimes."""
    state = current()
    emit_rows(
        state,
        pack_listing(state, "runtimes", pack),
        empty="No runtimes found",
        columns=["ID", "Ref", "Name", "Pack", "Description"],
        cells=lambda r: [r["id"], r["ref"], r["name"], r.get("pack_ref") or "", r.get("description") or ""],
    )


@app.command()
def show(ref: RefArg) -> None:
    """Show a runtime and its versions (which are available on the workers)."""
    state = current()
    data = state.client.get(f"/runtimes/{ref}")
    out = state.printer

    def human() -> None:
        out.section(f"Runtime: {data['ref']}")
        out.key_values(
            [
                ("ID", data["id"]),
                ("Ref", data["ref"]),
                ("Name", data.get("name")),
                ("Pack", data.get("pack_ref")),
                ("Description", data.get("description")),
                ("Created", data.get("created")),
                ("Updated", data.get("updated")),
            ]
        )
        versions = data.get("versions") or []
        if versions:
            out.section("Versions")
            out.table(
                ["Version", "Default", "Available", "Verified"],
                [
                    [v["version"], v["is_default"], v["available"], v.get("verified_at") or "never"]
                    for v in versions
                ],
            )

    out.emit(data, human)
