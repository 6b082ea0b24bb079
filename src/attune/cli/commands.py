"""Wires the client command groups and the global options into the ``attune`` application.

Global options may appear anywhere on the command line (docs/cli.md): :class:`AttuneGroup` moves
them in front of the command path before click parses, unless the command itself defines an
option with the same name (``-y`` means ``--yes`` in delete commands, ``-v`` means verbose test
output in ``pack test``, ``--json`` is the stub flag of ``pack checksum``).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup, TyperOption

from attune import __version__
from attune.cli.errors import CliError
from attune.cli.state import State, activate, configure_logging

CLIENT_PANEL = "Client commands (talk to an Attune server)"

#: Global options: name -> takes a value.
GLOBAL_OPTIONS = {
    "-p": True,
    "--profile": True,
    "--api-url": True,
    "--output": True,
    "-j": False,
    "--json": False,
    "-y": False,
    "--yaml": False,
    "-v": False,
    "--verbose": False,
    "-V": False,
    "--version": False,
}


class OutputFormat(StrEnum):
    table = "table"
    json = "json"
    yaml = "yaml"


def _option_arity(command: TyperCommand | TyperGroup) -> dict[str, bool]:
    """Option name -> takes a value, for one command's own options."""
    names: dict[str, bool] = {}
    for param in command.params:
        if isinstance(param, TyperOption):
            takes_value = not param.is_flag and not param.count
            for name in (*param.opts, *param.secondary_opts):
                names[name] = takes_value
    return names


#: Words a boolean flag may be followed by (``--enabled true``, ``--enabled=false``).
TRUE_WORDS = frozenset({"true", "yes", "1", "on"})
FALSE_WORDS = frozenset({"false", "no", "0", "off"})


def _flag_negations(command: TyperCommand | TyperGroup) -> dict[str, str | None]:
    """Boolean flag name -> its negative form (``--enabled`` -> ``--disabled``), or None."""
    flags: dict[str, str | None] = {}
    for param in command.params:
        if isinstance(param, TyperOption) and param.is_flag and not param.count:
            negative = param.secondary_opts[0] if param.secondary_opts else None
            for name in param.opts:
                flags[name] = negative
    return flags


def _flag_with_word(flag: str, word: str, negative: str | None) -> list[str] | None:
    """``--enabled true`` -> ``[--enabled]``; ``--enabled false`` -> ``[--disabled]`` (or nothing
    without a negative form); None when ``word`` is not a boolean word."""
    lowered = word.lower()
    if lowered in TRUE_WORDS:
        return [flag]
    if lowered in FALSE_WORDS:
        return [negative] if negative else []
    return None


def hoist_global_options(root: TyperGroup, args: list[str]) -> list[str]:
    """Move global options that follow the command path to the front of ``args``.

    Boolean flags of the command also take an explicit value (``--enabled true|false``,
    ``--enabled=false``), which is rewritten to the flag or its negative form (``--disabled``).
    """
    hoisted: list[str] = []
    rest: list[str] = []
    command: TyperCommand | TyperGroup = root
    own = _option_arity(root)
    flags = _flag_negations(root)
    i = 0
    while i < len(args):
        token = args[i]
        if token == "--":
            rest.extend(args[i:])
            break
        name = token.split("=", 1)[0] if token.startswith("--") else token
        if token.startswith("-") and len(token) > 1:
            if command is not root and name in GLOBAL_OPTIONS and name not in own:
                hoisted.append(token)
                if GLOBAL_OPTIONS[name] and "=" not in token and i + 1 < len(args):
                    hoisted.append(args[i + 1])
                    i += 1
                i += 1
                continue
            if name in flags and command is not root:
                if "=" in token:
                    rewritten = _flag_with_word(name, token.split("=", 1)[1], flags[name])
                    if rewritten is not None:
                        rest.extend(rewritten)
                        i += 1
                        continue
                elif i + 1 < len(args):
                    rewritten = _flag_with_word(name, args[i + 1], flags[name])
                    if rewritten is not None:
                        rest.extend(rewritten)
                        i += 2
                        continue
            rest.append(token)
            if own.get(name) and "=" not in token and i + 1 < len(args):
                rest.append(args[i + 1])
                i += 1
            i += 1
            continue
        rest.append(token)
        if isinstance(command, TyperGroup):
            sub = command.commands.get(token)
            if isinstance(sub, TyperCommand | TyperGroup):
                command = sub
                own = _option_arity(sub)
                flags = _flag_negations(sub)
        i += 1
    return hoisted + rest


class AttuneGroup(TyperGroup):
    """The root group: global options anywhere, and client errors as one line with exit 1."""

    # ``ctx`` is typer's (vendored, private) click context base class; typed loosely on purpose.
    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, hoist_global_options(self, list(args)))

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except CliError as exc:
            typer.secho(f"Error: {exc.message}", fg="red", err=True)
            raise typer.Exit(exc.exit_code) from None


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"attune {__version__}")
        raise typer.Exit()


def root_callback(
    ctx: typer.Context,
    profile: Annotated[
        str | None,
        typer.Option("--profile", "-p", envvar="ATTUNE_PROFILE", help="Use this profile for this run only."),
    ] = None,
    api_url: Annotated[
        str | None,
        typer.Option("--api-url", envvar="ATTUNE_API_URL", help="API base URL for this run."),
    ] = None,
    output: Annotated[
        OutputFormat | None, typer.Option("--output", case_sensitive=False, help="Output format.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", "-j", help="Same as --output json.")] = False,
    as_yaml: Annotated[bool, typer.Option("--yaml", "-y", help="Same as --output yaml.")] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Debug logging (HTTP too) to stderr.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", "-V", is_eager=True, callback=_print_version, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """Attune: event-driven automation and orchestration.

    Run the platform with the server commands; drive it with the client commands, which talk
    to the server named by the current profile (see `attune config`).
    """
    chosen = [
        flag
        for flag, on in (("--output", output is not None), ("--json", as_json), ("--yaml", as_yaml))
        if on
    ]
    if len(chosen) > 1:
        raise typer.BadParameter(f"{' and '.join(chosen)} cannot be combined", param_hint="output format")
    state = ctx.obj if isinstance(ctx.obj, State) else State()
    state.profile_override = profile or None
    state.api_url_override = api_url or None
    state.output_flag = "json" if as_json else "yaml" if as_yaml else (output.value if output else None)
    state.verbose = verbose
    ctx.obj = state
    activate(state)
    ctx.call_on_close(state.close)
    configure_logging(verbose)


def install_client_commands(app: typer.Typer) -> None:
    """Add the global options and every client command group to the ``attune`` application."""
    from attune.cli import (
        action,
        auth,
        config_cmd,
        execution,
        inquiry,
        key,
        pack,
        permission,
        policy,
        rule,
        runtime,
        sensor,
        trigger,
        user,
        workflow,
    )

    app.callback(
        cls=AttuneGroup,
        context_settings={"help_option_names": ["-h", "--help"]},
        no_args_is_help=True,
    )(root_callback)
    groups = [
        (auth.app, "auth"),
        (config_cmd.app, "config"),
        (pack.app, "pack"),
        (action.app, "action"),
        (execution.app, "execution"),
        (rule.app, "rule"),
        (trigger.app, "trigger"),
        (sensor.app, "sensor"),
        (key.app, "key"),
        (inquiry.app, "inquiry"),
        (workflow.app, "workflow"),
        (runtime.app, "runtime"),
        (policy.app, "policy"),
        (user.app, "user"),
        (permission.app, "permission"),
    ]
    _merge_sensor_service(app, sensor.app)
    for group, name in groups:
        app.add_typer(group, name=name, rich_help_panel=CLIENT_PANEL)
    app.command("run", rich_help_panel=CLIENT_PANEL)(action.run)


def _merge_sensor_service(app: typer.Typer, group: typer.Typer) -> None:
    """``attune sensor`` alone still runs the sensor service; ``attune sensor list`` etc. are client
    commands. The server command of that name is folded into the group's callback."""
    service = None
    for info in list(app.registered_commands):
        name = info.name or (info.callback.__name__ if info.callback else None)
        if name == "sensor":
            service = info.callback
            app.registered_commands.remove(info)
    if service is None:
        return
    run_service = service

    def sensor_callback(
        ctx: typer.Context,
        config: Annotated[
            Path | None,
            typer.Option("--config", "-c", help="Server configuration YAML (when running the service)."),
        ] = None,
    ) -> None:
        """Run the sensor service (no subcommand), or manage sensors on a server."""
        if ctx.invoked_subcommand is None:
            run_service(config=config)

    group.callback(invoke_without_command=True)(sensor_callback)
