"""``attune auth``: log in and out, show the current identity, refresh the token, change the password."""

from __future__ import annotations

from typing import Annotated

import typer

from attune.cli.errors import CliError
from attune.cli.state import current

app = typer.Typer(help="Log in to the server and manage the stored token.", no_args_is_help=True)


@app.command()
def login(
    username: Annotated[str, typer.Option("--username", "-u", help="Login name.", prompt="Username")],
    password: Annotated[
        str | None, typer.Option("--password", help="Password (prompted, hidden, when omitted).")
    ] = None,
) -> None:
    """Log in and store the tokens in the selected profile (file readable by you only)."""
    state = current()
    if password is None:
        password = typer.prompt("Password", hide_input=True)
    data = state.client.post("/auth/login", {"login": username, "password": password})
    state.save_tokens(data["access_token"], data["refresh_token"])
    out = state.printer
    out.report(
        {k: data[k] for k in ("access_token", "refresh_token", "expires_in")},
        f"Successfully logged in as {username} (profile '{state.profile_name}')",
        f"Token expires in {data['expires_in']} seconds",
    )


@app.command()
def logout() -> None:
    """Forget the tokens of the selected profile (no server call)."""
    state = current()
    state.save_tokens(None, None)
    out = state.printer
    out.emit({"message": "Successfully logged out"}, lambda: out.success("Successfully logged out"))


@app.command()
def whoami() -> None:
    """Show the identity the stored token belongs to."""
    state = current()
    if not state.client.token:
        raise CliError("Not logged in. Use 'attune auth login' to authenticate.")
    data = state.client.get("/auth/me")
    out = state.printer

    def human() -> None:
        out.section("Current Identity")
        out.key_values(
            [("ID", data["id"]), ("Login", data["login"]), ("Display Name", data.get("display_name") or "-")]
        )

    out.emit(data, human)


@app.command()
def refresh() -> None:
    """Exchange the refresh token for a new token pair."""
    state = current()
    token = state.profile.refresh_token
    if not token:
        raise CliError("No refresh token found. Please log in again.")
    data = state.client.post("/auth/refresh", {"refresh_token": token})
    state.save_tokens(data["access_token"], data["refresh_token"])
    out = state.printer
    out.report(
        data,
        "Token refreshed successfully",
        f"New token expires in {data['expires_in']} seconds",
    )


@app.command("change-password")
def change_password(
    current_password: Annotated[
        str | None, typer.Option("--current", help="Current password (prompted, hidden, when omitted).")
    ] = None,
    new_password: Annotated[
        str | None, typer.Option("--new", help="New password, 8+ characters (prompted twice when omitted).")
    ] = None,
) -> None:
    """Change your password; every earlier token is revoked, so the stored ones are forgotten."""
    state = current()
    if not state.client.token:
        raise CliError("Not logged in. Use 'attune auth login' to authenticate.")
    if current_password is None:
        current_password = typer.prompt("Current password", hide_input=True)
    if new_password is None:
        new_password = typer.prompt("New password", hide_input=True, confirmation_prompt=True)
    data = state.client.post(
        "/auth/change-password", {"current_password": current_password, "new_password": new_password}
    )
    state.save_tokens(None, None)
    out = state.printer
    out.report(data, "Password changed", "Log in again with the new password ('attune auth login')")
