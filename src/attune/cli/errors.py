"""Errors the client reports as one ``Error: …`` line and exit status 1 (docs/cli.md)."""

from __future__ import annotations


class CliError(Exception):
    """A failure the user can act on; printed without a traceback."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class ApiError(CliError):
    """The server answered with an error status."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"API error ({status} {reason}): {message}")
        self.status = status
        self.reason = reason
        self.detail = message
