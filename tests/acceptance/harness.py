"""Real deployments for the acceptance tests: the embedded server in the SQLite pass, the scaled
processes on PostgreSQL + RabbitMQ in the PostgreSQL pass."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from attune.testing.deployment import Deployment, make_workdir
from tests.conftest import (
    AMQP_URL,
    BACKEND,
    PG_URL,
    _create_empty_pg_database,
    _drop_pg_database,
    require_postgres,
    require_rabbitmq,
)

MODE = "scaled" if BACKEND == "postgres" else "embedded"


@contextlib.contextmanager
def running_deployment(root: Path, **options: Any) -> Iterator[Deployment]:
    """A started deployment of this pass's kind under ``root``, on a database of its own.

    ``options`` go to :class:`Deployment` (heartbeat_interval, extra_env, ...). On exit the
    processes stop and a PostgreSQL database is dropped.
    """
    workdir = make_workdir(root)
    database = ""
    if BACKEND == "postgres":
        require_postgres()
        require_rabbitmq()
        database = f"attune_acc_{uuid.uuid4().hex[:10]}"
        asyncio.run(_create_empty_pg_database(database))
        db_url, bus_url = f"postgresql://{PG_URL.split('://', 1)[1]}/{database}", AMQP_URL
    else:
        db_url, bus_url = f"sqlite:///{workdir / 'data' / 'attune.db'}", "memory://"
    deployment = Deployment(workdir=workdir, database_url=db_url, bus_url=bus_url, mode=MODE, **options)
    try:
        deployment.start()
        yield deployment
    finally:
        deployment.stop()
        if database:
            asyncio.run(_drop_pg_database(database))
