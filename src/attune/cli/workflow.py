"""``attune workflow``: validate a workflow file locally, list and show workflows (docs/api.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from attune.cli.errors import CliError
from attune.cli.state import current
from attune.cli.workflow_check import validate_file

app = typer.Typer(help="Workflows: graphs of tasks run as one action.", no_args_is_help=True)


@app.command()
def validate(
    files: Annotated[
        list[Path],
        typer.Argument(metavar="FILE...", exists=True, dir_okay=False, help="Workflow YAML files."),
    ],
) -> None:
    """Check workflow files locally (no server needed); exits 1 when any has problems."""
    state = current()
    out = state.printer
    report: list[dict[str, Any]] = []
    for file in files:
        doc, errors = validate_file(file)
        report.append(
            {"file": str(file), "ref": (doc or {}).get("ref"), "valid": not errors, "errors": errors}
        )
    if out.human:
        for item in report:
            if item["valid"]:
                out.success(f"{item['file']}: valid ({item['ref']})")
            else:
                out.fail(f"{item['file']}: {len(item['errors'])} problem(s)")
                for error in item["errors"]:
                    out.err.print(f"    - {error}", markup=False, highlight=False)
    else:
        out.data(report)
    if not all(item["valid"] for item in report):
        raise typer.Exit(1)


@app.command("list")
def list_workflows(
    pack: Annotated[str | None, typer.Option("--pack", help="Only this pack's workflows.")] = None,
    tags: Annotated[str | None, typer.Option("--tags", help="Comma-separated tags (any of them).")] = None,
    search: Annotated[str | None, typer.Option("--search", help="Text in the label or description.")] = None,
) -> None:
    """List workflows."""
    state = current()
    params = {"tags": tags, "search": search, "pack_ref": pack}
    rows = state.client.get_all("/workflows", params)
    out = state.printer

    def human() -> None:
        if not rows:
            out.info("No workflows found")
            return
        out.table(
            ["ID", "Ref", "Version", "Enabled", "Tags", "Description"],
            [
                [
                    r["id"],
                    r["ref"],
                    r.get("version"),
                    r.get("enabled"),
                    ", ".join(r.get("tags") or []),
                    r.get("description") or "",
                ]
                for r in rows
            ],
        )

    out.emit(rows, human)


@app.command()
def show(ref: Annotated[str, typer.Argument(metavar="REF")]) -> None:
    """Show a workflow and its definition."""
    state = current()
    data = state.client.get(f"/workflows/{ref}")
    if not isinstance(data, dict):
        raise CliError(f"Unexpected response for workflow '{ref}'")
    out = state.printer

    def human() -> None:
        out.section(f"Workflow: {data['ref']}")
        out.key_values(
            [
                ("ID", data.get("id")),
                ("Ref", data["ref"]),
                ("Pack", data.get("pack_ref")),
                ("Label", data.get("label")),
                ("Version", data.get("version")),
                ("Enabled", data.get("enabled")),
                ("Tags", ", ".join(data.get("tags") or [])),
                ("Description", data.get("description")),
                ("Created", data.get("created")),
                ("Updated", data.get("updated")),
            ]
        )
        if data.get("definition"):
            out.section("Definition")
            out.pretty_json(data["definition"])

    out.emit(data, human)
