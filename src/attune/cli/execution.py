"""``attune execution``: list, inspect, follow, cancel and re-run executions (docs/cli.md)."""

from __future__ import annotations

import sys
import time
from contextlib import nullcontext
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

import typer

from attune.cli.common import EXECUTION_TERMINAL, confirm, parse_pairs
from attune.cli.errors import CliError
from attune.cli.output import Printer, status_text
from attune.cli.state import State, current

app = typer.Typer(help="Inspect, follow, cancel and re-run executions.", no_args_is_help=True)

LIST_FIELDS = (
    "id",
    "action_ref",
    "status",
    "parent",
    "enforcement",
    "rule_ref",
    "trigger_ref",
    "original_execution",
    "retry_count",
    "created",
    "updated",
)


class Status(StrEnum):
    requested = "requested"
    scheduling = "scheduling"
    scheduled = "scheduled"
    running = "running"
    completed = "completed"
    failed = "failed"
    canceling = "canceling"
    cancelled = "cancelled"
    timeout = "timeout"
    abandoned = "abandoned"
    paused = "paused"


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def duration(execution: dict[str, Any]) -> str:
    """``updated - created`` for finished executions, ``-`` while they run."""
    if execution.get("status") not in EXECUTION_TERMINAL:
        return "-"
    start, end = _parse_time(execution.get("created")), _parse_time(execution.get("updated"))
    if start is None or end is None:
        return "-"
    seconds = (end - start).total_seconds()
    return f"{seconds:.1f}s" if seconds < 60 else f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


@app.command("list")
def list_executions(
    pack: Annotated[str | None, typer.Option("--pack", help="Only actions of this pack.")] = None,
    action: Annotated[str | None, typer.Option("--action", "-a", help="Exact action ref.")] = None,
    status: Annotated[Status | None, typer.Option("--status", "-s", help="Only this status.")] = None,
    result: Annotated[
        str | None, typer.Option("--result", "-r", help="Substring of the result (case-insensitive).")
    ] = None,
    rule: Annotated[str | None, typer.Option("--rule", help="Started by this rule.")] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-l", min=1, max=100, help="How many (newest first).")
    ] = 50,
) -> None:
    """List executions, newest first."""
    state = current()
    params = {
        "per_page": limit,
        "pack_name": pack,
        "action_ref": action,
        "status": status.value if status else None,
        "result_contains": result,
        "rule_ref": rule,
    }
    rows: list[dict[str, Any]] = state.client.get("/executions", params)
    out = state.printer

    def human() -> None:
        if not rows:
            out.info("No executions found")
            return
        out.table(
            ["ID", "Action", "Status", "Started", "Duration"],
            [[r["id"], r["action_ref"], status_text(r["status"]), r["created"], duration(r)] for r in rows],
        )

    out.emit([{k: r.get(k) for k in LIST_FIELDS} for r in rows], human)


def show_execution(out: Printer, data: dict[str, Any]) -> None:
    out.section(f"Execution: {data['id']}")
    out.key_values(
        [
            ("ID", data["id"]),
            ("Action", data.get("action_ref")),
            ("Status", status_text(data["status"])),
            ("Parent ID", data.get("parent")),
            ("Enforcement ID", data.get("enforcement")),
            ("Executor ID", data.get("executor")),
            *attempt_rows(data),
            ("Created", data.get("created")),
            ("Updated", data.get("updated")),
            ("Duration", duration(data)),
        ]
    )
    if data.get("config") is not None:
        out.section("Parameters")
        out.pretty_json(data["config"])
    if data.get("result") is not None:
        out.section("Result")
        out.pretty_json(data["result"])


def attempt_rows(data: dict[str, Any]) -> list[tuple[str, Any]]:
    """The retry chain of an execution: which attempt it is and of which first execution."""
    original = data.get("original_execution")
    retry_count = int(data.get("retry_count") or 0)
    if original is None and not data.get("max_retries"):
        return []
    rows: list[tuple[str, Any]] = [
        ("Attempt", f"{retry_count + 1} of {int(data.get('max_retries') or 0) + 1}")
    ]
    if original is not None:
        rows.append(("First Execution", original))
    if data.get("retry_reason"):
        rows.append(("Retry Reason", data["retry_reason"]))
    return rows


@app.command()
def show(execution_id: Annotated[int, typer.Argument(metavar="ID")]) -> None:
    """Show one execution with its parameters and result."""
    state = current()
    data = state.client.get(f"/executions/{execution_id}")
    state.printer.emit(data, lambda: show_execution(state.printer, data))


@app.command()
def result(
    execution_id: Annotated[int, typer.Argument(metavar="ID")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="json or yaml.")] = "json",
) -> None:
    """Print only the result of an execution (for piping into jq)."""
    state = current()
    data = state.client.get(f"/executions/{execution_id}")
    if data.get("result") is None:
        raise CliError(f"Execution {execution_id} has no result yet")
    Printer("yaml" if fmt == "yaml" else "json").data(data["result"])


@app.command()
def logs(
    execution_id: Annotated[int, typer.Argument(metavar="ID")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing until it finishes.")] = False,
) -> None:
    """Print the stdout and stderr the action has written so far."""
    state = current()
    client, out = state.client, state.printer
    shown = {"stdout": 0, "stderr": 0}
    while True:
        data = client.get(f"/executions/{execution_id}/logs")
        if out.human:
            for stream in ("stdout", "stderr"):
                text = data.get(stream) or ""
                new = text[shown[stream] :]
                if new:
                    (sys.stdout if stream == "stdout" else sys.stderr).write(new)
                    shown[stream] = len(text)
            sys.stdout.flush()
            sys.stderr.flush()
        if not follow:
            if not out.human:
                out.data({"execution_id": execution_id, **data})
            elif not shown["stdout"] and not shown["stderr"]:
                out.info("No logs available")
            return
        status = client.get(f"/executions/{execution_id}")["status"]
        if status in EXECUTION_TERMINAL:
            if not out.human:
                out.data({"execution_id": execution_id, "status": status, **data})
            return
        time.sleep(1.0)


@app.command()
def cancel(
    execution_id: Annotated[int, typer.Argument(metavar="ID")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Cancel a running or queued execution."""
    state = current()
    if not confirm(state, f"Are you sure you want to cancel execution {execution_id}?", yes):
        state.printer.info("Cancellation aborted")
        return
    data = state.client.post(f"/executions/{execution_id}/cancel", {})
    out = state.printer
    out.emit(data, lambda: out.success(f"Execution {execution_id} {data['status']}"))


@app.command()
def pause(execution_id: Annotated[int, typer.Argument(metavar="ID")]) -> None:
    """Pause a running workflow: no new task starts; tasks already running finish."""
    state = current()
    data = state.client.post(f"/executions/{execution_id}/pause", {})
    out = state.printer
    out.emit(data, lambda: out.success(f"Execution {execution_id} paused"))


@app.command()
def resume(execution_id: Annotated[int, typer.Argument(metavar="ID")]) -> None:
    """Resume a paused workflow."""
    state = current()
    data = state.client.post(f"/executions/{execution_id}/resume", {})
    out = state.printer
    out.emit(data, lambda: out.success(f"Execution {execution_id} resumed"))


@app.command()
def rerun(
    execution_id: Annotated[int, typer.Argument(metavar="ID")],
    params: Annotated[
        list[str] | None,
        typer.Argument(metavar="[KEY=VALUE]...", help="Parameters to change (the others are kept)."),
    ] = None,
    no_wait: Annotated[bool, typer.Option("--async", help="Return the new execution id at once.")] = False,
    timeout: Annotated[int, typer.Option("--timeout", min=1, help="Seconds to wait.")] = 300,
) -> None:
    """Run an execution's action again with the same parameters, changing those given as
    KEY=VALUE; waits like ``attune run``."""
    state = current()
    changes = parse_pairs(params or [])
    body = {"parameters": changes} if changes else {}
    data = state.client.post(f"/executions/{execution_id}/rerun", body)
    finish(state, data, wait=not no_wait, timeout=timeout)


# -- waiting for an execution (docs/cli.md, with the exit-code change) -----------------


def wait_for(state: State, execution: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Poll until the execution is terminal; a spinner shows on a terminal only."""
    execution_id = execution["id"]
    client, out = state.client, state.printer
    started = time.monotonic()
    spinner = out.human and sys.stdout.isatty()
    status_line = (
        out.err.status(f"Execution {execution_id} {execution['status']}") if spinner else nullcontext()
    )
    interval = 0.1
    with status_line as status:
        while True:
            elapsed = time.monotonic() - started
            if elapsed > timeout:
                raise CliError(f"Execution timed out after {timeout:g} seconds")
            execution = client.get(f"/executions/{execution_id}")
            if execution["status"] in EXECUTION_TERMINAL:
                return execution
            # Short polls first (most actions finish in well under a second), then every 2 s.
            wake = time.monotonic() + interval
            while time.monotonic() < wake:
                if status is not None:
                    seconds = time.monotonic() - started
                    status.update(f"Execution {execution_id} {execution['status']} … {seconds:.1f}s")
                time.sleep(0.1)
            interval = min(interval * 1.5, 2.0)


def print_outcome(out: Printer, execution: dict[str, Any]) -> None:
    """The status line, then the action's output: stdout, or parsed data pretty-printed."""
    execution_id, status = execution["id"], execution["status"]
    result = execution.get("result")
    taken = duration(execution)
    suffix = f" in {taken}" if taken != "-" else ""
    body = result if isinstance(result, dict) else {}
    if status in ("completed", "succeeded"):
        out.success(f"Execution {execution_id} completed{suffix}")
    else:
        error = body.get("error") if isinstance(body.get("error"), str) else None
        out.fail(f"Execution {execution_id} {status}{suffix}" + (f": {error}" if error else ""))
    if not isinstance(result, dict):
        if result is not None:
            out.pretty_json(result)
        return
    if "data" in result:
        out.pretty_json(result["data"])
    elif result.get("stdout"):
        out.raw(str(result["stdout"]))
    elif not body.get("succeeded", True) and "error" not in body:
        out.pretty_json(result)


def finish(state: State, execution: dict[str, Any], *, wait: bool, timeout: float) -> None:
    """Print a submitted execution, waiting for it unless ``wait`` is false.

    Exits 0 only when the execution completed; any other terminal status exits 1. Ctrl-C while
    waiting offers to cancel the execution.
    """
    out = state.printer
    execution_id = execution["id"]
    if not wait:
        out.report(
            execution,
            f"Execution {execution_id} requested",
            f"Follow it with 'attune execution show {execution_id}'",
        )
        return
    if out.human:
        out.info(f"Waiting for execution {execution_id} ...")
    try:
        execution = wait_for(state, execution, timeout)
    except KeyboardInterrupt:
        _interrupted(state, execution_id)
    out.emit(execution, lambda: print_outcome(out, execution))
    if execution["status"] not in ("completed", "succeeded"):
        raise typer.Exit(1)


def _interrupted(state: State, execution_id: int) -> None:
    out = state.printer
    out.err.print()
    if sys.stdin.isatty():
        try:
            answer = typer.confirm(f"Cancel execution {execution_id}?", default=False)
        except (KeyboardInterrupt, typer.Abort):
            answer = False
        if answer:
            data = state.client.post(f"/executions/{execution_id}/cancel", {})
            out.warn(f"Execution {execution_id} {data['status']}")
            raise typer.Exit(130)
    out.warn(f"Execution {execution_id} keeps running; see 'attune execution show {execution_id}'")
    raise typer.Exit(130)
