"""``attune user``: identities that log in (docs/security.md "Permission sets").

Every command talks to the API as the logged-in identity (administrators manage identities).
``attune user create --admin --config FILE`` instead writes straight to the database named in a
server configuration: that is how the first administrator of a production deployment is made,
before anyone can log in.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from attune.cli.common import confirm
from attune.cli.errors import CliError
from attune.cli.state import current

app = typer.Typer(help="Users (identities) and who is an administrator.", no_args_is_help=True)


def identity_id(login: str) -> int:
    """The id of the identity with ``login`` (a number is taken as the id itself)."""
    if login.isdigit():
        return int(login)
    for row in current().client.get_all("/identities"):
        if row.get("login") == login:
            return int(row["id"])
    raise CliError(f"Identity '{login}' not found")


def _password(given: str | None, login: str) -> str:
    if given:
        return given
    if sys.stdin.isatty():
        value: str = typer.prompt(f"Password for {login}", hide_input=True, confirmation_prompt=True)
        return value
    return sys.stdin.read().rstrip("\n")


@app.command("list")
def list_users() -> None:
    """List identities, their permission sets and who is an administrator."""
    state = current()
    rows: list[dict[str, Any]] = state.client.get_all("/identities")
    out = state.printer

    def human() -> None:
        if not rows:
            out.info("No identities found")
            return
        out.table(
            ["ID", "Login", "Display Name", "Admin", "Permission Sets"],
            [
                [
                    r["id"],
                    r["login"],
                    r.get("display_name"),
                    r.get("is_admin"),
                    ", ".join(r["permission_sets"]),
                ]
                for r in rows
            ],
        )

    out.emit(rows, human)


@app.command()
def show(login: Annotated[str, typer.Argument(metavar="LOGIN", help="Login or id.")]) -> None:
    """Show one identity and what it may do."""
    state = current()
    ident = identity_id(login)
    data = state.client.get(f"/identities/{ident}")
    perms = state.client.get(f"/identities/{ident}/permissions")
    out = state.printer

    def human() -> None:
        out.section(f"Identity: {data['login']}")
        out.key_values(
            [
                ("ID", data["id"]),
                ("Display Name", data.get("display_name")),
                ("Admin", data.get("is_admin")),
                ("Permission Sets", ", ".join(perms.get("permission_sets") or []) or "-"),
                ("Created", data.get("created")),
            ]
        )
        grants = perms.get("grants") or []
        if grants:
            out.table(
                ["Resource", "Actions", "Constraints"],
                [[g["resource"], ", ".join(g["actions"]), g.get("constraints") or ""] for g in grants],
            )

    out.emit({**data, "permissions": perms}, human)


@app.command()
def create(
    login: Annotated[str, typer.Argument(metavar="LOGIN")],
    password: Annotated[
        str | None, typer.Option("--password", help="The password (default: prompt, or stdin).")
    ] = None,
    display_name: Annotated[str | None, typer.Option("--display-name", help="Shown in the UI.")] = None,
    admin: Annotated[bool, typer.Option("--admin", help="Make it an administrator.")] = False,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="Write to the database of this server configuration instead of calling the API "
            "(the first administrator of a deployment).",
        ),
    ] = None,
) -> None:
    """Create an identity (then give it rights: ``attune permission grant LOGIN core.viewer``)."""
    secret = _password(password, login)
    if len(secret) < 8:
        raise CliError("The password must have at least 8 characters")
    if config is not None:
        created = asyncio.run(_create_local(config, login, secret, display_name, admin))
        typer.echo(f"Identity '{login}' created (id {created}){' as an administrator' if admin else ''}")
        return
    state = current()
    body = {"login": login, "password": secret, "display_name": display_name, "is_admin": admin}
    data = state.client.post("/identities", body)
    out = state.printer
    out.emit(data, lambda: out.success(f"Identity '{login}' created (id {data['id']})"))


async def _create_local(
    config: Path, login: str, password: str, display_name: str | None, admin: bool
) -> int:
    from attune.auth.passwords import hash_password, make_hasher
    from attune.db.database import Database
    from attune.db.repos import identities, permissions
    from attune.settings import load_settings

    settings = load_settings(config)
    db = Database(settings.database.url, max_connections=2)
    try:
        password_hash = await asyncio.to_thread(hash_password, make_hasher(), password)
        async with db.transaction() as session:
            await permissions.ensure_builtin_sets(session)
            if await identities.by_login(session, login) is not None:
                raise CliError(f"Identity with login '{login}' already exists")
            row = await identities.create(
                session,
                login,
                password_hash=password_hash,
                display_name=display_name,
                attributes={"created_via": "cli"},
                is_admin=admin,
            )
            return row.id
    finally:
        await db.dispose()


@app.command()
def delete(
    login: Annotated[str, typer.Argument(metavar="LOGIN")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
) -> None:
    """Delete an identity (its own keys go with it)."""
    state = current()
    ident = identity_id(login)
    if not confirm(state, f"Are you sure you want to delete identity '{login}'?", yes):
        state.printer.info("Delete cancelled")
        return
    state.client.delete(f"/identities/{ident}")
    out = state.printer
    out.emit({"message": "Identity deleted successfully"}, lambda: out.success(f"Identity '{login}' deleted"))


@app.command()
def passwd(
    login: Annotated[str, typer.Argument(metavar="LOGIN")],
    password: Annotated[
        str | None, typer.Option("--password", help="The new password (default: prompt, or stdin).")
    ] = None,
) -> None:
    """Set an identity's password (administrators; change your own with ``attune auth``)."""
    state = current()
    ident = identity_id(login)
    secret = _password(password, login)
    state.client.put(f"/identities/{ident}", {"password": secret})
    out = state.printer
    out.emit({"message": "Password changed"}, lambda: out.success(f"Password of '{login}' changed"))
