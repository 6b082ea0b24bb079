"""Human tables and messages, or JSON/YAML for scripts (docs/cli.md).

Colour is used only on a terminal and honours ``NO_COLOR`` and ``CLICOLOR_FORCE``. Data written
in json/yaml mode goes straight to stdout without any decoration so it can be piped.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, TextIO

import yaml
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

GREEN = {"succeeded", "success", "enabled", "active", "running", "completed", "passed", "responded"}
RED = {"failed", "error", "disabled", "inactive", "timeout", "abandoned"}
YELLOW = {"pending", "scheduled", "queued", "requested", "scheduling", "canceling", "paused"}
GREY = {"cancelled", "canceled"}


def status_style(status: str) -> str:
    """The colour of a status word (docs/cli.md)."""
    value = status.lower()
    if value in GREEN:
        return "green"
    if value in RED:
        return "red"
    if value in YELLOW:
        return "yellow"
    if value in GREY:
        return "bright_black"
    return ""


def format_time(value: Any) -> str:
    """RFC 3339 timestamps as ``YYYY-MM-DD HH:MM:SS`` in their own offset; anything else unchanged."""
    if not isinstance(value, str):
        return "" if value is None else str(value)
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return value


def truncate(text: str, width: int) -> str:
    """Cut to ``width`` characters, ending in ``...`` when something was removed."""
    if width <= 0 or len(text) <= width:
        return text
    return text[: max(width - 3, 0)] + "..."


def _make_console(stream: TextIO) -> Console:
    force = os.environ.get("CLICOLOR_FORCE", "0") not in ("", "0")
    terminal = force or stream.isatty()
    return Console(
        file=stream,
        force_terminal=True if force else None,
        no_color=bool(os.environ.get("NO_COLOR")),
        highlight=False,
        # Off a terminal (pipes, CI logs) keep rows on one line instead of wrapping at 80 columns.
        width=None if terminal else 200,
        soft_wrap=not terminal,
    )


def cell(value: Any) -> Text:
    """One table cell: booleans as coloured ✓/✗, None as ``-``, timestamps shortened."""
    if isinstance(value, Text):
        return value
    if isinstance(value, bool):
        return Text("✓", style="green") if value else Text("✗", style="red")
    if value is None:
        return Text("-")
    if isinstance(value, (dict, list)):
        return Text(json.dumps(value, ensure_ascii=False))
    return Text(format_time(value))


def status_text(status: Any) -> Text:
    """A status coloured by its meaning."""
    return Text(str(status), style=status_style(str(status)))


class Printer:
    """Writes everything a command shows, in the selected output format."""

    def __init__(self, fmt: str = "table") -> None:
        self.format = fmt
        self._out: Console | None = None
        self._err: Console | None = None

    @property
    def human(self) -> bool:
        return self.format == "table"

    @property
    def out(self) -> Console:
        # Consoles bind to the streams current at first use (the test runner swaps them).
        if self._out is None:
            self._out = _make_console(sys.stdout)
        return self._out

    @property
    def err(self) -> Console:
        if self._err is None:
            self._err = _make_console(sys.stderr)
        return self._err

    # -- messages ------------------------------------------------------------------------------

    def success(self, message: str) -> None:
        self.out.print(Text("✓ ", style="green") + Text(message))

    def info(self, message: str) -> None:
        self.out.print(Text("ℹ ", style="blue") + Text(message))

    def warn(self, message: str) -> None:
        self.err.print(Text("⚠ ", style="yellow") + Text(message))

    def fail(self, message: str) -> None:
        self.err.print(Text("✗ ", style="red") + Text(message))

    def line(self, text: str | Text = "") -> None:
        self.out.print(text)

    def raw(self, text: str) -> None:
        """Text exactly as given (action output), without markup or wrapping."""
        self.out.file.write(text if text.endswith("\n") or not text else text + "\n")
        self.out.file.flush()

    def section(self, title: str) -> None:
        self.out.print()
        self.out.print(Text(title, style="bold underline"))

    # -- structures ----------------------------------------------------------------------------

    def table(self, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        table = Table(box=box.ROUNDED, header_style="bold cyan")
        for name in columns:
            table.add_column(name, overflow="fold")
        for row in rows:
            table.add_row(*(cell(v) for v in row))
        self.out.print(table)

    def key_values(self, pairs: Iterable[tuple[str, Any]]) -> None:
        table = Table(box=box.ROUNDED, header_style="bold cyan")
        table.add_column("Key", style="yellow")
        table.add_column("Value", overflow="fold")
        for key, value in pairs:
            table.add_row(key, cell(value))
        self.out.print(table)

    def pretty_json(self, value: Any) -> None:
        self.raw(json.dumps(value, indent=2, ensure_ascii=False, default=str))

    def data(self, value: Any) -> None:
        """The machine-readable form of ``value`` (json or yaml)."""
        if self.format == "yaml":
            self.raw(yaml.safe_dump(value, sort_keys=False, allow_unicode=True, default_flow_style=False))
        else:
            self.pretty_json(value)

    def report(self, value: Any, success: str, *infos: str) -> None:
        """A success line and info lines in table mode, otherwise ``value`` as json/yaml."""
        if not self.human:
            self.data(value)
            return
        self.success(success)
        for info in infos:
            self.info(info)

    def emit(self, value: Any, human: Callable[[], None]) -> None:
        """``human()`` in table mode, otherwise ``value`` as json/yaml."""
        if self.human:
            human()
        else:
            self.data(value)
