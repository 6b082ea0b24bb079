"""``attune policy``: list and show execution policies (docs/cli.md, docs/policies.md)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from attune.cli.common import emit_rows
from attune.cli.state import current

app = typer.Typer(help="Execution policies: concurrency and rate limits (from packs).", no_args_is_help=True)

RefArg = Annotated[str, typer.Argument(metavar="REF", help="Policy ref (pack.name).")]


def limit_text(policy: dict[str, Any]) -> str:
    """``2 at once`` or ``10 per 60 s``."""
    if policy.get("kind") == "rate_limit":
        return f"{policy['threshold']} per {policy.get('window_seconds')} s"
    return f"{policy['threshold']} at once"


def scope_text(policy: dict[str, Any]) -> str:
    if policy.get("action_ref"):
        return f"action {policy['action_ref']}"
    if policy.get("pack_ref"):
        return f"pack {policy['pack_ref']}"
    return "global"


@app.command("list")
def list_policies(
    pack: Annotated[str | None, typer.Option("--pack", help="Only this pack's policies.")] = None,
    action: Annotated[str | None, typer.Option("--action", "-a", help="Only this action's policies.")] = None,
) -> None:
    """List policies."""
    state = current()
    params = {"pack_ref": pack, "action_ref": action}
    rows: list[dict[str, Any]] = state.client.get_all("/policies", params=params)
    emit_rows(
        state,
        rows,
        empty="No policies found",
        columns=["Ref", "Kind", "Limit", "Method", "Applies To", "Manual Runs"],
        cells=lambda r: [
            r["ref"],
            r["kind"],
            limit_text(r),
            r["method"],
            scope_text(r),
            "yes" if r.get("apply_to_manual", True) else "exempt",
        ],
    )


@app.command()
def show(ref: RefArg) -> None:
    """Show one policy."""
    state = current()
    data = state.client.get(f"/policies/{ref}")
    out = state.printer

    def human() -> None:
        out.section(f"Policy: {data['ref']}")
        out.key_values(
            [
                ("ID", data["id"]),
                ("Ref", data["ref"]),
                ("Name", data.get("name")),
                ("Description", data.get("description")),
                ("Kind", data.get("kind")),
                ("Limit", limit_text(data)),
                ("Method", data.get("method")),
                ("Applies To", scope_text(data)),
                ("Manual Runs", "counted" if data.get("apply_to_manual", True) else "exempt"),
                ("Group By", ", ".join(data.get("parameters") or []) or "-"),
                ("Created", data.get("created")),
                ("Updated", data.get("updated")),
            ]
        )

    out.emit(data, human)
