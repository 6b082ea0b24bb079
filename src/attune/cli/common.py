"""Small helpers shared by the command modules: prompts, key=value parsing, listings, ref completion."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import typer

from attune.cli.errors import CliError
from attune.cli.state import State, current

EXECUTION_TERMINAL = {"completed", "failed", "cancelled", "timeout", "abandoned", "succeeded", "canceled"}


def confirm(state: State, question: str, yes: bool) -> bool:
    """Ask before a destructive change, in table mode only (docs/cli.md); default "no"."""
    if yes or not state.printer.human:
        return True
    if not sys.stdin.isatty():
        raise CliError(f"{question} Pass --yes to confirm without a prompt.")
    return typer.confirm(question, default=False)


def parse_value(text: str) -> Any:
    """JSON when it parses, else the text itself (``n=3`` → 3, ``msg=Hello`` → "Hello")."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_pairs(pairs: list[str], *, what: str = "parameter") -> dict[str, Any]:
    """``K=V`` items split at the first ``=``; the last value of a repeated key wins."""
    result: dict[str, Any] = {}
    for item in pairs:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f"Invalid {what} format: '{item}'. Expected key=value")
        result[key] = parse_value(value)
    return result


def parse_json_option(text: str | None, option: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CliError(f"{option} is not valid JSON: {exc}") from exc


def bool_option(value: str | None, option: str) -> bool | None:
    """``true``/``false`` option values (``--enabled true``)."""
    if value is None:
        return None
    lowered = value.lower()
    if lowered in ("true", "yes", "1", "on"):
        return True
    if lowered in ("false", "no", "0", "off"):
        return False
    raise typer.BadParameter(f"expected true or false, got '{value}'", param_hint=option)


def require_changes(body: dict[str, Any]) -> dict[str, Any]:
    body = {k: v for k, v in body.items() if v is not None}
    if not body:
        raise CliError("At least one field must be provided to update")
    return body


def filter_name(items: list[dict[str, Any]], name: str | None, key: str = "ref") -> list[dict[str, Any]]:
    """Client-side substring filter on ``key`` (the server has no such filter)."""
    if not name:
        return items
    needle = name.lower()
    return [item for item in items if needle in str(item.get(key, "")).lower()]


# -- listings and switches shared by the pack-content commands -----------------------------------


def pack_listing(state: State, resource: str, pack: str | None) -> list[dict[str, Any]]:
    """Every ``resource`` (``actions``, ``rules``, ...), or only those of ``pack``."""
    rows: list[dict[str, Any]] = state.client.get_all(f"/packs/{pack}/{resource}" if pack else f"/{resource}")
    return rows


def emit_rows(
    state: State,
    rows: list[dict[str, Any]],
    *,
    empty: str,
    columns: list[str],
    cells: Callable[[dict[str, Any]], list[Any]],
    fields: tuple[str, ...] | None = None,
) -> None:
    """Print ``rows`` as a table (``empty`` when there are none); JSON/YAML output gets the rows
    themselves, cut down to ``fields`` when given."""
    out = state.printer

    def human() -> None:
        if not rows:
            out.info(empty)
            return
        out.table(columns, [cells(row) for row in rows])

    out.emit(rows if fields is None else [{k: r.get(k) for k in fields} for r in rows], human)


def put_update(resource: str, noun: str, ref: str, body: dict[str, Any]) -> None:
    """``PUT /<resource>/<ref>`` with the fields given (at least one) and report it."""
    state = current()
    data = state.client.put(f"/{resource}/{ref}", require_changes(body))
    out = state.printer
    out.emit(data, lambda: out.success(f"{noun} '{ref}' updated successfully"))


def delete_confirmed(
    resource: str,
    noun: str,
    ref: str,
    yes: bool,
    *,
    cancelled: str = "Delete cancelled",
    done: str | None = None,
) -> None:
    """Ask (unless ``yes``), then ``DELETE /<resource>/<ref>`` and report it."""
    state = current()
    if not confirm(state, f"Are you sure you want to delete {noun.lower()} '{ref}'?", yes):
        state.printer.info(cancelled)
        return
    state.client.delete(f"/{resource}/{ref}")
    out = state.printer
    message = done or f"{noun} '{ref}' deleted successfully"
    out.emit({"message": f"{noun} deleted successfully"}, lambda: out.success(message))


def toggle(resource: str, noun: str, ref: str, action: str) -> None:
    """``POST /<resource>/<ref>/<action>`` (enable or disable) and report it."""
    state = current()
    data = state.client.post(f"/{resource}/{ref}/{action}", {})
    out = state.printer
    out.emit(data, lambda: out.success(f"{noun} '{ref}' {action}d"))


# -- shell completion of refs fetched from the server -------------------------------------------


def _complete(ctx: typer.Context, path: str, incomplete: str) -> list[str]:
    """Refs starting with ``incomplete``; silent (no completions) when the server is unreachable."""
    try:
        # Completion parses without running the root callback: read its options directly.
        params = ctx.find_root().params
        state = ctx.find_object(State) or State()
        state.profile_override = state.profile_override or params.get("profile") or None
        state.api_url_override = state.api_url_override or params.get("api_url") or None
        items = state.client.get_all(path, limit=500)
    except Exception:
        return []
    return [str(i["ref"]) for i in items if str(i.get("ref", "")).startswith(incomplete)]


def complete_packs(ctx: typer.Context, incomplete: str) -> list[str]:
    return _complete(ctx, "/packs", incomplete)


def complete_actions(ctx: typer.Context, incomplete: str) -> list[str]:
    return _complete(ctx, "/actions", incomplete)


def complete_rules(ctx: typer.Context, incomplete: str) -> list[str]:
    return _complete(ctx, "/rules", incomplete)


def complete_triggers(ctx: typer.Context, incomplete: str) -> list[str]:
    return _complete(ctx, "/triggers", incomplete)


def complete_sensors(ctx: typer.Context, incomplete: str) -> list[str]:
    return _complete(ctx, "/sensors", incomplete)
