"""Entry point of the ``attune`` console script."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated

import typer

from attune import __version__
from attune.errors import ConfigError
from attune.settings import Settings, load_settings

app = typer.Typer(help="Attune: event-driven automation and orchestration.", no_args_is_help=True)
db_app = typer.Typer(help="Database administration.", no_args_is_help=True)
app.add_typer(db_app, name="db")

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


@app.command()
def server(config: ConfigOption = None) -> None:
    """Run every service (api, executor, worker, sensor, notifier) in one process."""
    _serve(_settings(config), None)


@app.command()
def api(config: ConfigOption = None) -> None:
    """Run the HTTP API alone (scaled deployment)."""
    _serve(_settings(config), ["api"])


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


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


def main() -> None:
    app()
