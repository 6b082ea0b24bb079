"""``attune action`` and the ``attune run`` shortcut (docs/cli.md)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from attune.cli.common import (
    complete_actions,
    delete_confirmed,
    emit_rows,
    filter_name,
    pack_listing,
    parse_json_option,
    parse_pairs,
    put_update,
)
from attune.cli.execution import finish
from attune.cli.state import current

app = typer.Typer(help="List, inspect and run actions.", no_args_is_help=True)

RefArg = Annotated[
    str, typer.Argument(metavar="REF", help="Action ref (pack.name).", autocompletion=complete_actions)
]
LIST_FIELDS = ("id", "ref", "pack_ref", "label", "description", "entrypoint", "runtime", "created", "updated")


@app.command("list")
def list_actions(
    pack: Annotated[str | None, typer.Option("--pack", help="Only this pack's actions.")] = None,
    name: Annotated[str | None, typer.Option("--name", "-n", help="Substring of the ref.")] = None,
) -> None:
    """List actions."""
    state = current()
    emit_rows(
        state,
        filter_name(pack_listing(state, "actions", pack), name),
        empty="No actions found",
        columns=["ID", "Pack", "Ref", "Runtime", "Description"],
        cells=lambda r: [
            r["id"],
            r["pack_ref"],
            r["ref"],
            r.get("runtime") or "none",
            r.get("description") or "",
        ],
        fields=LIST_FIELDS,
    )


@app.command()
def show(ref: RefArg) -> None:
    """Show an action and its parameters."""
    state = current()
    data = state.client.get(f"/actions/{ref}")
    out = state.printer

    def human() -> None:
        out.section(f"Action: {data['ref']}")
        out.key_values(
            [
                ("ID", data["id"]),
                ("Reference", data["ref"]),
                ("Pack", data["pack_ref"]),
                ("Label", data.get("label")),
                ("Description", data.get("description")),
                ("Entry Point", data.get("entrypoint")),
                ("Runtime", data.get("runtime") or "None"),
                ("Retry", retry_text(data.get("retry"))),
                ("Created", data.get("created")),
                ("Updated", data.get("updated")),
            ]
        )
        if data.get("param_schema"):
            out.section("Parameters Schema")
            out.pretty_json(data["param_schema"])

    out.emit(data, human)


def retry_text(retry: Any) -> str:
    """``3 times on failed, timeout, every 10 s`` (or ``never``) for an action's retry policy."""
    if not isinstance(retry, dict) or not retry.get("count"):
        return "never"
    delay = retry.get("delay")
    pause = f"every {delay} s" if delay is not None else "with exponential backoff"
    return f"{retry['count']} time(s) on {', '.join(retry.get('on') or [])}, {pause}"


@app.command()
def update(
    ref: RefArg,
    label: Annotated[str | None, typer.Option("--label")] = None,
    description: Annotated[str | None, typer.Option("--description")] = None,
    entrypoint: Annotated[str | None, typer.Option("--entrypoint")] = None,
    runtime: Annotated[int | None, typer.Option("--runtime", help="Runtime id.")] = None,
) -> None:
    """Change an action's label, description, entry point or runtime."""
    put_update(
        "actions",
        "Action",
        ref,
        {"label": label, "description": description, "entrypoint": entrypoint, "runtime": runtime},
    )


@app.command()
def delete(
    ref: RefArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete an action."""
    delete_confirmed("actions", "Action", ref, yes)


def _execute(
    ref: str,
    pairs: list[str],
    params: list[str],
    params_json: str | None,
    env: list[str],
    no_wait: bool,
    timeout: int | None,
) -> None:
    state = current()
    if params_json is not None and (pairs or params):
        raise typer.BadParameter("cannot be combined with --param or KEY=VALUE", param_hint="--params-json")
    if no_wait and timeout is not None:
        raise typer.BadParameter("only applies when waiting (drop --async)", param_hint="--timeout")
    parameters: Any = parse_json_option(params_json, "--params-json")
    if parameters is None:
        parameters = parse_pairs([*pairs, *params])
    body: dict[str, Any] = {"action_ref": ref, "parameters": parameters}
    if env:
        env_vars = parse_pairs(env, what="environment variable")
        body["env_vars"] = {k: v if isinstance(v, str) else str(v) for k, v in env_vars.items()}
    if state.printer.human:
        state.printer.info(f"Executing action: {ref}")
    execution = state.client.post("/executions/execute", body)
    finish(state, execution, wait=not no_wait, timeout=timeout or 300)


PairsArg = Annotated[
    list[str] | None,
    typer.Argument(
        metavar="[KEY=VALUE]...", help="Parameters; values are JSON when they parse (n=3, b=true)."
    ),
]
ParamOpt = Annotated[list[str] | None, typer.Option("--param", help="KEY=VALUE parameter (repeatable).")]
ParamsJsonOpt = Annotated[
    str | None, typer.Option("--params-json", help="All parameters as one JSON object.")
]
EnvOpt = Annotated[
    list[str] | None, typer.Option("--env", help="KEY=VALUE environment variable (repeatable).")
]
WaitOpt = Annotated[bool, typer.Option("--wait", "-w", help="Wait for the result (the default).")]
AsyncOpt = Annotated[bool, typer.Option("--async", help="Print the execution id and return at once.")]
TimeoutOpt = Annotated[int | None, typer.Option("--timeout", min=1, help="Seconds to wait (default 300).")]


@app.command()
def execute(
    ref: RefArg,
    pairs: PairsArg = None,
    param: ParamOpt = None,
    params_json: ParamsJsonOpt = None,
    env: EnvOpt = None,
    wait: WaitOpt = True,
    no_wait: AsyncOpt = False,
    timeout: TimeoutOpt = None,
) -> None:
    """Run an action and wait for its result.

    Exits 0 when the execution completed and 1 for any other final status (failed, timeout,
    cancelled, abandoned), so scripts can rely on the exit code.
    """
    _execute(ref, pairs or [], param or [], params_json, env or [], no_wait, timeout)


def run(
    ref: RefArg,
    pairs: PairsArg = None,
    param: ParamOpt = None,
    params_json: ParamsJsonOpt = None,
    env: EnvOpt = None,
    wait: WaitOpt = True,
    no_wait: AsyncOpt = False,
    timeout: TimeoutOpt = None,
) -> None:
    """Run an action and wait for its result: attune run core.echo message=hi

    Shortcut for `attune action execute`. Exits 0 when the execution completed, 1 otherwise.
    """
    _execute(ref, pairs or [], param or [], params_json, env or [], no_wait, timeout)
