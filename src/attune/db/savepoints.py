"""SAVEPOINT statements sent as plain SQL (docs/performance.md).

SQLAlchemy builds and compiles a fresh ``SavepointClause`` for every savepoint: the compiled form
is never cached because each savepoint has a new name. ``add_once`` opens one per consumer insert
(an enforcement, an execution), and those compilations were ~2 % of the server's CPU per webhook
run. The statements are fixed text around the name, so we send that text directly; events and
the transaction bookkeeping stay SQLAlchemy's (``Connection.exec_driver_sql``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection, Dialect


def install_plain_savepoints(dialect: Dialect) -> None:
    """Make ``dialect`` issue SAVEPOINT / RELEASE / ROLLBACK TO as driver SQL on this engine."""
    quote = dialect.identifier_preparer.quote

    def savepoint(connection: Connection, name: str) -> None:
        connection.exec_driver_sql(f"SAVEPOINT {quote(name)}")

    def release(connection: Connection, name: str) -> None:
        connection.exec_driver_sql(f"RELEASE SAVEPOINT {quote(name)}")

    def rollback_to(connection: Connection, name: str) -> None:
        connection.exec_driver_sql(f"ROLLBACK TO SAVEPOINT {quote(name)}")

    # Instance attributes shadow the class methods for this engine's dialect only.
    hooks: dict[str, Any] = {
        "do_savepoint": savepoint,
        "do_release_savepoint": release,
        "do_rollback_to_savepoint": rollback_to,
    }
    for attribute, hook in hooks.items():
        setattr(dialect, attribute, hook)
