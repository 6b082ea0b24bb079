"""Progress bars for ``attune pack install`` and ``upgrade`` (the server streams NDJSON progress)."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from attune.cli.client import LONG_TIMEOUT
from attune.cli.errors import ApiError, CliError
from attune.cli.state import State


class _Bars:
    """One bar per download/clone and one for environment builds; other steps are printed lines."""

    def __init__(self, progress: Progress | None, state: State) -> None:
        self.progress = progress
        self.state = state
        self.tasks: dict[tuple[str, str | None, str | None], TaskID] = {}
        self.last_message: str | None = None

    def _say(self, message: str) -> None:
        if message == self.last_message:
            return
        self.last_message = message
        line = Text("ℹ ", style="blue") + Text(message)
        if self.progress is not None:
            self.progress.console.print(line)
        else:
            self.state.printer.err.print(line)

    def update(self, event: dict[str, Any]) -> None:
        stage, unit, pack = event.get("stage", ""), event.get("unit"), event.get("pack")
        message = str(event.get("message") or stage)
        counted = unit in ("bytes", "objects") or stage == "environment"
        if self.progress is None or not counted:
            if not counted or event.get("current") == event.get("total"):
                self._say(message)
            return
        key = (stage, unit, pack)
        label = {"bytes": "Downloading", "objects": "Cloning"}.get(str(unit), "Environments")
        description = f"{label} {pack}" if pack else label
        if key not in self.tasks:
            self.tasks[key] = self.progress.add_task(description, total=event.get("total"), unit=unit)
        task = self.tasks[key]
        self.progress.update(task, completed=event.get("current") or 0, total=event.get("total"))
        if stage == "environment":
            self.progress.update(task, description=f"{description}: {message}")


class _CountColumn(ProgressColumn):
    """Bytes as sizes (``1.2/3.4 MB``), anything else as ``m/n``."""

    def __init__(self) -> None:
        super().__init__()
        self._bytes = DownloadColumn()

    def render(self, task: Task) -> Text:
        if task.fields.get("unit") == "bytes":
            return self._bytes.render(task)
        total = "?" if task.total is None else str(int(task.total))
        return Text(f"{int(task.completed)}/{total}", style="progress.download")


def _columns() -> list[Any]:
    return [
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        _CountColumn(),
        TimeElapsedColumn(),
    ]


def run_streamed(state: State, path: str, body: dict[str, Any]) -> Any:
    """POST ``body`` to ``path?stream=true``, drawing progress; return the final ``data``."""
    out = state.printer
    console = out.err
    progress = Progress(*_columns(), console=console, transient=True) if console.is_terminal else None
    bars = _Bars(progress, state) if out.human else None
    result: Any = None
    stream = state.client.ndjson("POST", path, params={"stream": "true"}, json=body, timeout=LONG_TIMEOUT)
    if progress is not None and bars is not None:
        progress.start()
    try:
        for event in stream:
            kind = event.get("event") if isinstance(event, dict) else None
            if kind == "progress" and bars is not None:
                bars.update(event)
            elif kind == "result":
                result = event.get("data")
            elif kind == "error":
                status = int(event.get("status") or 500)
                try:
                    reason = HTTPStatus(status).phrase
                except ValueError:
                    reason = str(event.get("code") or "Error")
                raise ApiError(status, reason, str(event.get("error")))
    finally:
        if progress is not None:
            progress.stop()
    if result is None:
        raise CliError("The server ended the install without a result")
    return result
