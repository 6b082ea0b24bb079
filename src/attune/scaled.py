"""``make run-scaled``: the scaled deployment on one machine, without containers
(docs/operations.md "Running the scaled deployment").

Starts ``attune api``, ``attune executor`` × N, ``attune worker`` × M (named ``worker-1`` …, so a
restarted worker keeps its id), ``attune sensor`` and ``attune notifier`` against a local
PostgreSQL and RabbitMQ, after creating the database if it is missing and running
``attune db upgrade``. Every line a process prints is shown prefixed with its name. A process that
exits on its own is started again after a short pause (so ``kill -9`` of any of them is something
you can watch the deployment recover from). Ctrl-C (or SIGTERM) stops them all: each gets
SIGINT, then SIGKILL after ``ATTUNE_SCALED_STOP_TIMEOUT`` seconds.

Environment (defaults in brackets): ``ATTUNE__DATABASE__URL``
[``postgresql://postgres@127.0.0.1:5432/attune``], ``ATTUNE__MESSAGE_QUEUE__URL``
[``amqp://guest:guest@127.0.0.1:5672/%2f``], ``ATTUNE_SCALED_EXECUTORS`` [2],
``ATTUNE_SCALED_WORKERS`` [2], ``ATTUNE_SCALED_STOP_TIMEOUT`` [40]; every other ``ATTUNE__…``
setting reaches all processes (``ATTUNE__SERVER__PORT`` [8080], ``ATTUNE__NOTIFIER__PORT``
[8081], ``ATTUNE__SECURITY__JWT_SECRET`` …).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import make_url

from attune.db import migrate

DEFAULT_DATABASE = "postgresql://postgres@127.0.0.1:5432/attune"
DEFAULT_BUS = "amqp://guest:guest@127.0.0.1:5672/%2f"
RESTART_DELAY = 2.0
ATTUNE = str(Path(sys.executable).with_name("attune"))


@dataclass
class Child:
    """One supervised process."""

    name: str
    args: list[str]
    process: asyncio.subprocess.Process | None = None
    restarts: int = 0
    pumps: list[asyncio.Task[None]] = field(default_factory=list)


def say(name: str, line: str) -> None:
    print(f"{name:>11} | {line}", flush=True)


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("ATTUNE__DATABASE__URL", DEFAULT_DATABASE)
    env.setdefault("ATTUNE__MESSAGE_QUEUE__URL", DEFAULT_BUS)
    return env


def children(env: dict[str, str]) -> list[Child]:
    executors = int(env.get("ATTUNE_SCALED_EXECUTORS", "2"))
    workers = int(env.get("ATTUNE_SCALED_WORKERS", "2"))
    found = [Child("api", ["api"])]
    found += [Child(f"executor-{n}", ["executor"]) for n in range(1, executors + 1)]
    found += [Child(f"worker-{n}", ["worker", "--name", f"worker-{n}"]) for n in range(1, workers + 1)]
    found += [Child("sensor", ["sensor"]), Child("notifier", ["notifier"])]
    return found


async def ensure_database(url: str) -> None:
    """Create the PostgreSQL database named in ``url`` when it does not exist yet."""
    if await migrate.create_database_if_missing(url):
        say("supervisor", f"created database {make_url(url).database}")


async def pump(child: Child, stream: asyncio.StreamReader) -> None:
    while line := await stream.readline():
        say(child.name, line.decode(errors="replace").rstrip())


async def start(child: Child, env: dict[str, str]) -> None:
    # Its own session: Ctrl-C reaches the supervisor only, which then stops everyone in order.
    child.process = await asyncio.create_subprocess_exec(
        ATTUNE,
        *child.args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    assert child.process.stdout is not None
    child.pumps = [asyncio.create_task(pump(child, child.process.stdout))]
    say("supervisor", f"started {child.name} (pid {child.process.pid})")


async def watch(child: Child, env: dict[str, str], stopping: asyncio.Event) -> None:
    """Restart ``child`` whenever it exits while the deployment is not stopping."""
    while not stopping.is_set():
        assert child.process is not None
        code = await child.process.wait()
        await asyncio.gather(*child.pumps, return_exceptions=True)
        if stopping.is_set():
            return
        child.restarts += 1
        say("supervisor", f"{child.name} exited with {code}; restarting in {RESTART_DELAY:g} s")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), RESTART_DELAY)
        if not stopping.is_set():
            await start(child, env)


async def stop_all(running: list[Child], grace: float) -> None:
    for child in running:
        if child.process is not None and child.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                child.process.send_signal(signal.SIGINT)
    waits = [child.process.wait() for child in running if child.process is not None]
    try:
        await asyncio.wait_for(asyncio.gather(*waits), grace)
    except TimeoutError:
        for child in running:
            if child.process is not None and child.process.returncode is None:
                say("supervisor", f"{child.name} did not stop in {grace:g} s; killing it")
                child.process.kill()
        await asyncio.gather(*(c.process.wait() for c in running if c.process is not None))


async def run() -> int:
    env = environment()
    await ensure_database(env["ATTUNE__DATABASE__URL"])
    upgrade = await asyncio.create_subprocess_exec(ATTUNE, "db", "upgrade", env=env)
    if await upgrade.wait() != 0:
        say("supervisor", "attune db upgrade failed; not starting")
        return upgrade.returncode or 1
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    running = children(env)
    for child in running:
        await start(child, env)
    port = env.get("ATTUNE__SERVER__PORT", "8080")
    say("supervisor", f"API and UI on http://127.0.0.1:{port}/ ; Ctrl-C stops everything")
    watchers = [asyncio.create_task(watch(child, env, stopping)) for child in running]
    await stopping.wait()
    say("supervisor", "stopping")
    await stop_all(running, float(env.get("ATTUNE_SCALED_STOP_TIMEOUT", "40")))
    for task in watchers:
        task.cancel()
    await asyncio.gather(*watchers, return_exceptions=True)
    return 0


def main() -> None:
    """Entry point of ``python -m attune.scaled``."""
    sys.exit(asyncio.run(run()))


if __name__ == "__main__":
    main()
