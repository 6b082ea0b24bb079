"""``attune inquiry``: questions workflows ask people, and the answers (docs/api.md)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from attune.cli.common import parse_json_option, parse_pairs
from attune.cli.errors import CliError
from attune.cli.output import status_text
from attune.cli.state import current

app = typer.Typer(help="Inquiries: questions waiting for a human answer.", no_args_is_help=True)


class InquiryStatus(StrEnum):
    pending = "pending"
    responded = "responded"
    timeout = "timeout"
    cancelled = "cancelled"


@app.command("list")
def list_inquiries(
    status: Annotated[InquiryStatus | None, typer.Option("--status", "-s", help="Only this status.")] = None,
    execution: Annotated[int | None, typer.Option("--execution", "-e", help="Only this execution's.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-l", min=1, max=500)] = 50,
) -> None:
    """List inquiries, newest first."""
    state = current()
    params = {"status": status.value if status else None, "execution": execution, "limit": limit}
    rows: list[dict[str, Any]] = state.client.get("/inquiries", params)
    out = state.printer

    def human() -> None:
        if not rows:
            out.info("No inquiries found")
            return
        out.table(
            ["ID", "Execution", "Status", "Prompt", "Timeout At", "Created"],
            [
                [
                    r["id"],
                    r["execution"],
                    status_text(r["status"]),
                    r["prompt"],
                    r.get("timeout_at"),
                    r["created"],
                ]
                for r in rows
            ],
        )

    out.emit(rows, human)


@app.command()
def show(inquiry_id: Annotated[int, typer.Argument(metavar="ID")]) -> None:
    """Show an inquiry with its response schema and answer."""
    state = current()
    data = state.client.get(f"/inquiries/{inquiry_id}")
    out = state.printer

    def human() -> None:
        out.section(f"Inquiry: {data['id']}")
        out.key_values(
            [
                ("ID", data["id"]),
                ("Execution", data.get("execution")),
                ("Status", status_text(data["status"])),
                ("Prompt", data.get("prompt")),
                ("Assigned To", data.get("assigned_to")),
                ("Timeout At", data.get("timeout_at")),
                ("Responded At", data.get("responded_at")),
                ("Created", data.get("created")),
            ]
        )
        if data.get("response_schema"):
            out.section("Response Schema")
            out.pretty_json(data["response_schema"])
        if data.get("response") is not None:
            out.section("Response")
            out.pretty_json(data["response"])

    out.emit(data, human)


@app.command()
def respond(
    inquiry_id: Annotated[int, typer.Argument(metavar="ID")],
    pairs: Annotated[
        list[str] | None,
        typer.Argument(metavar="[KEY=VALUE]...", help="Answer fields (values parsed as JSON)."),
    ] = None,
    response_json: Annotated[
        str | None, typer.Option("--json-response", "-r", help="The whole answer as JSON.")
    ] = None,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="Read the JSON answer from a file.")
    ] = None,
) -> None:
    """Answer a pending inquiry: attune inquiry respond 7 approved=true"""
    state = current()
    given = [x for x in (pairs, response_json, file) if x]
    if len(given) != 1:
        raise CliError("Give the answer as KEY=VALUE pairs, --json-response or --file (exactly one)")
    response: Any
    if file is not None:
        response = parse_json_option(file.read_text(encoding="utf-8"), str(file))
    elif response_json is not None:
        response = parse_json_option(response_json, "--json-response")
    else:
        response = parse_pairs(pairs or [], what="response")
    data = state.client.post(f"/inquiries/{inquiry_id}/respond", {"response": response})
    out = state.printer
    out.emit(data, lambda: out.success(f"Response to inquiry {inquiry_id} submitted"))
