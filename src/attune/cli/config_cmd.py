"""``attune config``: profiles and preferences in the local file; never contacts the server.

Changes always apply to the *saved* current profile; ``--profile`` only selects what read-only
commands show, and is never persisted.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.text import Text

from attune.cli.config import Profile
from attune.cli.errors import CliError
from attune.cli.state import current

app = typer.Typer(help="Profiles and preferences of this client (local file only).", no_args_is_help=True)

KEYS = ("api_url", "output_format", "default_output_format", "current_profile", "auth_token", "refresh_token")


def _mask(value: str | None) -> str:
    return "***" if value else "(not set)"


@app.command("list")
def list_config() -> None:
    """Show the effective configuration (tokens masked)."""
    state = current()
    config = state.config
    profile = config.profiles.get(state.profile_name)
    values: dict[str, Any] = {
        "current_profile": config.current_profile,
        "api_url": state.api_url,
        "output_format": state.output_format,
        "default_output_format": config.default_output_format,
        "auth_token": _mask(profile.auth_token if profile else None),
        "refresh_token": _mask(profile.refresh_token if profile else None),
    }
    out = state.printer

    def human() -> None:
        out.section("Configuration")
        out.key_values(values.items())

    out.emit(values, human)


@app.command()
def get(key: Annotated[str, typer.Argument(help=f"One of: {', '.join(KEYS)}")]) -> None:
    """Print one configuration value."""
    state = current()
    config = state.config
    profile = config.profiles.get(state.profile_name)
    value: Any
    if key == "api_url":
        value = profile.api_url if profile else state.api_url
    elif key == "output_format":
        value = (profile.output_format if profile else None) or config.default_output_format
    elif key == "default_output_format":
        value = config.default_output_format
    elif key == "current_profile":
        value = config.current_profile
    elif key in ("auth_token", "refresh_token"):
        value = _mask(getattr(profile, key) if profile else None)
    else:
        raise CliError(f"Unknown config key: {key}")
    out = state.printer
    out.emit({"key": key, "value": value}, lambda: out.line(Text(str(value))))


@app.command("set")
def set_value(key: str, value: str) -> None:
    """Change one value of the saved current profile (or a global one)."""
    state = current()
    config = state.config
    if key == "api_url":
        config.profile(config.current_profile).api_url = value
    elif key == "output_format":
        config.profile(config.current_profile).output_format = value
    elif key == "default_output_format":
        config.default_output_format = value
    elif key == "current_profile":
        config.profile(value)
        config.current_profile = value
    elif key in ("auth_token", "refresh_token"):
        raise CliError(f"{key} cannot be set directly; use 'attune auth login'")
    else:
        raise CliError(f"Unknown config key: {key}")
    config.save()
    out = state.printer
    out.emit(
        {"key": key, "value": value, "message": "Configuration updated"},
        lambda: out.line(Text(f"Configuration updated: {key} = {value}")),
    )


@app.command()
def path() -> None:
    """Print the location of the configuration file."""
    state = current()
    out = state.printer
    file = str(state.config.path)
    out.emit({"path": file}, lambda: out.line(Text(file)))


@app.command()
def profiles() -> None:
    """List the profiles; the active one is marked."""
    state = current()
    config = state.config
    rows = [{"name": name, "current": name == config.current_profile} for name in sorted(config.profiles)]
    out = state.printer

    def human() -> None:
        out.section("Profiles")
        for row in rows:
            if row["current"]:
                out.line(Text("  • ") + Text(f"{row['name']} (active)", style="bold green"))
            else:
                out.line(Text(f"  • {row['name']}"))

    out.emit(rows, human)


@app.command("current")
def current_profile() -> None:
    """Print the name of the current profile."""
    state = current()
    name = state.config.current_profile
    out = state.printer
    out.emit({"current_profile": name}, lambda: out.line(Text(name)))


@app.command()
def use(name: str) -> None:
    """Make NAME the current profile."""
    state = current()
    config = state.config
    config.profile(name)
    config.current_profile = name
    config.save()
    out = state.printer
    out.emit(
        {"current_profile": name, "message": "Switched profile"},
        lambda: out.success(f"Switched to profile '{name}'"),
    )


@app.command("add-profile")
def add_profile(
    name: str,
    api_url: Annotated[str, typer.Option("--api-url", "-a", help="Base URL of the server.")],
    description: Annotated[str | None, typer.Option("--description", "-d")] = None,
) -> None:
    """Add a profile, or replace an existing one (its tokens are dropped)."""
    state = current()
    config = state.config
    config.profiles[name] = Profile(api_url=api_url, description=description)
    config.save()
    out = state.printer
    out.report(
        {"profile": name, "api_url": api_url, "message": "Profile added"},
        f"Profile '{name}' added",
        f"API URL: {api_url}",
    )


@app.command("remove-profile")
def remove_profile(name: str) -> None:
    """Remove a profile (not the active one, not ``default``)."""
    state = current()
    config = state.config
    if name == config.current_profile:
        raise CliError("Cannot remove active profile")
    if name == "default":
        raise CliError("Cannot remove the default profile")
    config.profiles.pop(name, None)
    config.save()
    out = state.printer
    out.emit(
        {"profile": name, "message": "Profile removed"}, lambda: out.success(f"Profile '{name}' removed")
    )


@app.command("show-profile")
def show_profile(name: str) -> None:
    """Show one profile (tokens masked)."""
    state = current()
    profile = state.config.profiles.get(name)
    if profile is None:
        raise CliError(f"Profile '{name}' not found")
    data = profile.to_dict()
    for token in ("auth_token", "refresh_token"):
        if token in data:
            data[token] = "***"
    out = state.printer

    def human() -> None:
        out.section(f"Profile: {name}")
        pairs: list[tuple[str, Any]] = [
            ("API URL", profile.api_url),
            ("Auth Token", _mask(profile.auth_token)),
            ("Refresh Token", _mask(profile.refresh_token)),
        ]
        if profile.output_format:
            pairs.append(("Output Format", profile.output_format))
        if profile.description:
            pairs.append(("Description", profile.description))
        out.key_values(pairs)

    out.emit(data, human)
