"""Pack sensors as subprocesses (docs/sensors.md).

A :class:`SensorPlan` is everything one sensor process is started from (the sensor row, its
runtime and the enabled rules on its triggers). :class:`SensorManager` keeps exactly one
:class:`SensorProcess` per plan: it starts new ones, stops the ones no longer wanted and
restarts those whose plan changed, so a sensor always runs with the current trigger instances.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attune import st2compat
from attune.auth.service import mint_sensor_token
from attune.clock import Clock
from attune.db.repos import packs as packs_repo
from attune.messaging.topology import EVENTS_EXCHANGE
from attune.platform import Platform

log = logging.getLogger(__name__)

SENSOR_TOKEN_TTL = 86400
#: How many times an exited sensor is restarted before it is left failed.
MAX_RESTARTS = 3
#: A process that ran this long before exiting resets the restart budget.
STABLE_AFTER_SECONDS = 60.0
#: Pause between stopping and starting a sensor on restart (docs/sensors.md).
RESTART_PAUSE_SECONDS = 0.1
NATIVE_BINARIES = frozenset({"", "native", "none"})


class SensorStartError(Exception):
    """A sensor process cannot be started (missing script, no token…)."""


@dataclass(frozen=True)
class SensorPlan:
    """What one sensor process runs with. Two equal plans need no restart."""

    sensor_id: int
    sensor_ref: str
    pack_ref: str
    entrypoint: str
    runtime_name: str
    execution_config: Mapping[str, Any]
    trigger_refs: tuple[str, ...]
    #: ``[{"id": rule id, "ref": rule ref, "config": trigger_params, "trigger_ref": …}]``.
    instances: tuple[Mapping[str, Any], ...] = field(default_factory=tuple)
    #: The sensor row's ``config`` (StackStorm sensors: ``st2_class_name``, ``poll_interval``).
    config: Mapping[str, Any] = field(default_factory=dict)

    def fingerprint(self) -> str:
        """A stable text form of the plan, compared to decide on restarts."""
        return json.dumps(
            {
                "sensor_id": self.sensor_id,
                "sensor_ref": self.sensor_ref,
                "pack_ref": self.pack_ref,
                "entrypoint": self.entrypoint,
                "runtime_name": self.runtime_name,
                "execution_config": self.execution_config,
                "trigger_refs": self.trigger_refs,
                "instances": self.instances,
                "config": self.config,
            },
            sort_keys=True,
            default=str,
        )


def is_native(execution_config: Mapping[str, Any]) -> bool:
    """A runtime without an interpreter binary (or ``native``/``none``) runs files directly."""
    interpreter = execution_config.get("interpreter")
    binary = interpreter.get("binary") if isinstance(interpreter, Mapping) else None
    return str(binary or "").strip().lower() in NATIVE_BINARIES


def sensor_command(plan: SensorPlan, pack_dir: Path, envs_dir: Path) -> list[str]:
    """The argv of a sensor: the script itself (native) or ``<interpreter> <args…> <script>``.

    The interpreter is the pack environment's (``{envs_dir}/{pack}/{runtime name}``) when that
    directory exists and holds it, else the system binary. Raises :class:`SensorStartError`
    when the script is missing.
    """
    script = pack_dir / "sensors" / plan.entrypoint
    if not plan.entrypoint or not script.is_file():
        raise SensorStartError(f"sensor script {script} does not exist")
    config = plan.execution_config
    if is_native(config):
        return [str(script)]
    if config.get("st2"):
        return st2_sensor_command(plan, script, _interpreter(plan, pack_dir, envs_dir))
    return [_interpreter(plan, pack_dir, envs_dir), *_args(config), str(script)]


def _args(config: Mapping[str, Any]) -> list[str]:
    return [str(arg) for arg in config["interpreter"].get("args") or []]


def _interpreter(plan: SensorPlan, pack_dir: Path, envs_dir: Path) -> str:
    """The pack environment's interpreter when it exists, else the runtime's binary."""
    config = plan.execution_config
    interpreter = config["interpreter"]
    binary = str(interpreter["binary"]).strip()
    env_dir = envs_dir / plan.pack_ref / plan.runtime_name.lower()
    if env_dir.is_dir():
        environment = config.get("environment")
        template = environment.get("interpreter_path") if isinstance(environment, Mapping) else None
        candidate = str(template or f"{{env_dir}}/bin/{Path(binary).name}")
        candidate = candidate.replace("{env_dir}", str(env_dir)).replace("{pack_dir}", str(pack_dir))
        if Path(candidate).is_file():
            binary = candidate
    return binary


def st2_sensor_command(plan: SensorPlan, script: Path, interpreter: str) -> list[str]:
    """A StackStorm sensor class run by the compatibility wrapper (docs/stackstorm.md)."""
    class_name = str(plan.config.get("st2_class_name") or "")
    if not class_name:
        raise SensorStartError(f"sensor {plan.sensor_ref} names no class (st2 class_name)")
    poll = plan.config.get("poll_interval") or 60
    return [
        interpreter,
        "-u",
        str(st2compat.IMPORT_ROOT / "sensor_wrapper.py"),
        str(script),
        class_name,
        str(poll),
    ]


def sensor_environment(plan: SensorPlan, platform: Platform, token: str) -> dict[str, str]:
    """The inherited environment plus the ``ATTUNE_*`` variables of docs/sensors.md."""
    env = dict(os.environ)
    env.update(
        {
            "ATTUNE_API_URL": platform.settings.api_url,
            "ATTUNE_API_TOKEN": token,
            "ATTUNE_SENSOR_ID": str(plan.sensor_id),
            "ATTUNE_SENSOR_REF": plan.sensor_ref,
            "ATTUNE_SENSOR_TRIGGERS": json.dumps(list(plan.instances)),
            "ATTUNE_MQ_URL": platform.settings.message_queue.url,
            "ATTUNE_MQ_EXCHANGE": platform.settings.message_queue.prefix + EVENTS_EXCHANGE,
            "ATTUNE_LOG_LEVEL": platform.settings.log.level,
        }
    )
    if plan.execution_config.get("st2"):
        inherited = env.get("PYTHONPATH")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(st2compat.IMPORT_ROOT), inherited]))
    return env


async def issue_sensor_token(
    platform: Platform, sensor_ref: str, trigger_types: list[str], ttl: int = SENSOR_TOKEN_TTL
) -> str:
    """A sensor token for the identity ``sensor:<ref>``, scoped to ``trigger_types``.

    The sensor service holds the signing secret (it is a trusted internal service, configured like
    the API), so it mints the token itself, exactly as ``/auth/internal/sensor-token`` does for a
    caller presenting the service credential; no HTTP round trip, no dependency on the API being
    up. The sensor process gets only this narrow token, never the service credential
    (docs/security.md, "Service credentials").
    """
    _identity_id, token, _expires = await mint_sensor_token(
        platform.db, platform.tokens, sensor_ref, trigger_types, ttl
    )
    return token


def _signal_group(pid: int, sig: signal.Signals) -> None:
    # The sensor leads its own process group (start_new_session), so its children die with it.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


class SensorProcess:
    """One sensor subprocess, restarted up to :data:`MAX_RESTARTS` times when it exits."""

    def __init__(
        self,
        platform: Platform,
        plan: SensorPlan,
        *,
        shutdown_timeout: float,
        restart_backoff: float,
        clock: Clock | None = None,
    ) -> None:
        self.platform = platform
        self.plan = plan
        #: What the restart back-off waits on and the stable-run time is measured with.
        self.clock: Clock = clock or platform.clock
        self.shutdown_timeout = shutdown_timeout
        self.restart_backoff = restart_backoff
        self.failed = False
        self.restarts = 0
        self._proc: asyncio.subprocess.Process | None = None
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._log = logging.getLogger(f"attune.sensor.{plan.sensor_ref}")

    @property
    def pid(self) -> int | None:
        """The pid of the running process, if any."""
        proc = self._proc
        return proc.pid if proc is not None and proc.returncode is None else None

    def start(self) -> None:
        """Start supervising: spawn now, respawn after unexpected exits."""
        self._task = asyncio.create_task(self._supervise(), name=f"sensor-{self.plan.sensor_ref}")

    async def _spawn(self) -> asyncio.subprocess.Process:
        plan = self.plan
        settings = self.platform.settings
        # Installed and uploaded packs live under the data dir, registered ones where they were.
        async with self.platform.db.session() as session:
            pack_dir = await packs_repo.directory_of(session, settings, plan.pack_ref)
        argv = sensor_command(plan, pack_dir, settings.envs_dir)
        token = await issue_sensor_token(self.platform, plan.sensor_ref, list(plan.trigger_refs))
        try:
            return await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=sensor_environment(plan, self.platform, token),
                start_new_session=True,
            )
        except OSError as exc:
            raise SensorStartError(f"cannot run {argv[0]}: {exc}") from exc

    async def _pump(self, stream: asyncio.StreamReader | None, level: int) -> None:
        if stream is None:
            return
        while line := await stream.readline():
            self._log.log(level, "%s", line.decode(errors="replace").rstrip())

    async def _supervise(self) -> None:
        while not self._stopping:
            started = self.clock.monotonic()
            try:
                proc = await self._spawn()
            except Exception as exc:
                self._log.error("sensor %s failed to start: %s", self.plan.sensor_ref, exc)
                returncode: int | None = None
            else:
                self._proc = proc
                if self._stopping:
                    # stop() arrived while the process was being spawned.
                    _signal_group(proc.pid, signal.SIGTERM)
                else:
                    self._log.info("sensor %s started (pid %d)", self.plan.sensor_ref, proc.pid)
                readers = [
                    asyncio.create_task(self._pump(proc.stdout, logging.INFO)),
                    asyncio.create_task(self._pump(proc.stderr, logging.WARNING)),
                ]
                returncode = await proc.wait()
                _, pending = await asyncio.wait(readers, timeout=1.0)
                for reader in pending:
                    reader.cancel()
                if self._stopping:
                    return
            if self.clock.monotonic() - started >= STABLE_AFTER_SECONDS:
                self.restarts = 0
            if self.restarts >= MAX_RESTARTS:
                self.failed = True
                self._log.error(
                    "sensor %s exited (code %s); gave up after %d restarts",
                    self.plan.sensor_ref,
                    returncode,
                    self.restarts,
                )
                return
            delay = self.restart_backoff * (2**self.restarts)
            self.restarts += 1
            self._log.warning(
                "sensor %s exited (code %s); restart %d/%d in %.1f s",
                self.plan.sensor_ref,
                returncode,
                self.restarts,
                MAX_RESTARTS,
                delay,
            )
            # stop() sets the event, so a sensor waiting to restart stops at once.
            await self.clock.wait(self._wake, delay)

    async def stop(self) -> None:
        """SIGTERM the process group, SIGKILL it after ``shutdown_timeout``, stop supervising."""
        self._stopping = True
        self._wake.set()
        proc = self._proc
        if proc is not None and proc.returncode is None:
            _signal_group(proc.pid, signal.SIGTERM)
        task = self._task
        if task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(task), self.shutdown_timeout)
            except TimeoutError:
                self._log.warning("sensor %s ignored SIGTERM; killing it", self.plan.sensor_ref)
                if self._proc is not None:
                    _signal_group(self._proc.pid, signal.SIGKILL)
                await task
        # Also reaps stray members of the group that outlived their leader.
        if self._proc is not None:
            _signal_group(self._proc.pid, signal.SIGKILL)


class SensorManager:
    """Keeps the running sensor processes equal to the wanted plans."""

    def __init__(
        self,
        platform: Platform,
        *,
        shutdown_timeout: float,
        restart_backoff: float = 1.0,
        clock: Clock | None = None,
    ) -> None:
        self.platform = platform
        self.shutdown_timeout = shutdown_timeout
        self.restart_backoff = restart_backoff
        #: The sensors' restart back-off clock (default: the platform's).
        self.clock = clock
        self.processes: dict[int, SensorProcess] = {}

    async def apply(self, plans: Mapping[int, SensorPlan]) -> None:
        """Start, stop or restart sensors so that exactly ``plans`` run (by sensor id)."""
        for sensor_id in [sid for sid in self.processes if sid not in plans]:
            process = self.processes.pop(sensor_id)
            log.info("stopping sensor %s: no enabled rule uses it", process.plan.sensor_ref)
            await process.stop()
        for sensor_id, plan in plans.items():
            current = self.processes.get(sensor_id)
            if current is not None and current.plan.fingerprint() == plan.fingerprint():
                continue
            if current is not None:
                log.info("restarting sensor %s: its rules changed", plan.sensor_ref)
                await current.stop()
                await asyncio.sleep(RESTART_PAUSE_SECONDS)
            else:
                log.info("starting sensor %s", plan.sensor_ref)
            process = SensorProcess(
                self.platform,
                plan,
                shutdown_timeout=self.shutdown_timeout,
                restart_backoff=self.restart_backoff,
                clock=self.clock,
            )
            self.processes[sensor_id] = process
            process.start()

    async def stop_all(self) -> None:
        """Stop every sensor (in parallel, each bounded by the shutdown timeout)."""
        processes, self.processes = list(self.processes.values()), {}
        await asyncio.gather(*(p.stop() for p in processes), return_exceptions=True)
