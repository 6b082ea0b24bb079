"""Entry point of the ``attune`` console script."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated

import typer

from attune import __version__
from attune.cli.commands import install_client_commands
from attune.errors import ConfigError
from attune.settings import Settings, load_settings

app = typer.Typer(help="Attune: event-driven automation and orchestration.", no_args_is_help=True)
db_app = typer.Typer(help="Database administration.", no_args_is_help=True)
app.add_typer(db_app, name="db")
retention_app = typer.Typer(help="Purging old events, executions and history.", no_args_is_help=True)
app.add_typer(retention_app, name="retention")

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Configuration YAML file (default: $ATTUNE_CONFIG or config.yaml)"),
]


def _settings(config: Path | None) -> Settings:
    try:
        return load_settings(config)
    except ConfigError as exc:
        typer.secho(f"error: {exc.message}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from exc


def _serve(settings: Settings, services: list[str] | None) -> None:
    from attune.server import run_server

    _configure_logging(settings)
    try:
        asyncio.run(run_server(settings, services=services))
    except ConfigError as exc:
        typer.secho(f"error: {exc.message}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from exc
    except KeyboardInterrupt:
        pass


def _configure_logging(settings: Settings) -> None:
    level = {"trace": "DEBUG", "warn": "WARNING"}.get(settings.log.level, settings.log.level.upper())
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


HostOption = Annotated[
    str | None,
    typer.Option(
        "--host",
        help="Address to listen on (default server.host: 127.0.0.1). Anything but loopback is refused "
        "while the development user has its default password.",
    ),
]
PortOption = Annotated[int | None, typer.Option("--port", "-p", help="Port (default server.port: 8080)")]


def _listen(settings: Settings, host: str | None, port: int | None) -> Settings:
    if host is not None:
        settings.server.host = host
    if port is not None:
        settings.server.port = port
    return settings


@app.command()
def server(config: ConfigOption = None, host: HostOption = None, port: PortOption = None) -> None:
    """Run every service (api, executor, worker, sensor, notifier) in one process."""
    _serve(_listen(_settings(config), host, port), None)


@app.command()
def api(config: ConfigOption = None, host: HostOption = None, port: PortOption = None) -> None:
    """Run the HTTP API alone (scaled deployment)."""
    _serve(_listen(_settings(config), host, port), ["api"])


@app.command()
def executor(config: ConfigOption = None) -> None:
    """Run the executor alone: rules, policies, scheduling, retries, liveness (scaled deployment)."""
    _serve(_settings(config), ["executor"])


@app.command()
def worker(
    config: ConfigOption = None,
    name: Annotated[
        str | None, typer.Option("--name", "-n", help="Worker name (default worker-<hostname>)")
    ] = None,
) -> None:
    """Run one worker: it executes actions dispatched to it (scaled deployment)."""
    settings = _settings(config)
    if name:
        settings.worker.name = name
    _serve(settings, ["worker"])


@app.command()
def sensor(config: ConfigOption = None) -> None:
    """Run the sensor service: core timers and pack sensors (scaled deployment)."""
    _serve(_settings(config), ["sensor"])


@app.command()
def notifier(config: ConfigOption = None) -> None:
    """Run the notification WebSocket alone on notifier.host:notifier.port (scaled deployment)."""
    _serve(_settings(config), ["notifier"])


@db_app.command("upgrade")
def db_upgrade(
    config: ConfigOption = None,
    revision: Annotated[str, typer.Argument(help="Target revision")] = "head",
) -> None:
    """Apply database migrations up to REVISION."""
    from attune.db.migrate import upgrade

    settings = _settings(config)
    asyncio.run(upgrade(settings.database.url, revision))
    typer.echo(f"Database at {revision}")


@retention_app.command("run")
def retention_run(
    config: ConfigOption = None,
    older_than_days: Annotated[
        int | None,
        typer.Option(
            "--older-than-days",
            min=1,
            help="Delete rows older than N days, worker history included "
            "(default: retention.max_age_days / worker_history_max_age_days)",
        ),
    ] = None,
) -> None:
    """Purge old records once and print how many rows went from each table."""
    from datetime import timedelta

    from attune.db.database import Database
    from attune.retention import configured_ages, purge_database

    settings = _settings(config)
    retention = settings.retention
    ages = configured_ages(retention)
    if older_than_days is not None:
        ages = (timedelta(days=older_than_days), timedelta(days=older_than_days))
    if ages is None:
        typer.echo("Retention is disabled (retention.max_age_days = 0); pass --older-than-days to purge")
        return
    older_than, worker_age = ages

    async def run() -> dict[str, int]:
        db = Database(settings.database.url, max_connections=2)
        try:
            return await purge_database(
                db,
                older_than=older_than,
                worker_history_older_than=worker_age,
                batch_size=retention.batch_size,
            )
        finally:
            await db.dispose()

    for table, count in asyncio.run(run()).items():
        typer.echo(f"{table}: {count}")


@retention_app.command("serve")
def retention_serve(config: ConfigOption = None) -> None:
    """Run the retention service alone: purge every retention.interval seconds (scaled deployment)."""
    _serve(_settings(config), ["retention"])


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


# The client command groups (auth, config, pack, action, run, execution, …) and global options.
install_client_commands(app)


def main() -> None:
    app()
