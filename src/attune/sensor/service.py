"""The sensor service (docs/sensors.md): core timers per rule and pack sensors as subprocesses.

The service keeps the running timers and sensor processes equal to what the database asks
for. It reconciles on start, on every rule-lifecycle message (``RuleCreated``, ``RuleEnabled``,
``RuleDisabled`` — the API also sends ``RuleDisabled`` when an enabled rule is deleted) and, as
a safety net for lost messages, every ``resync_interval`` seconds. Messages only say "look
again"; the database is the truth, so a duplicate or reordered message does no harm.

Run one sensor service per deployment: each one runs every timer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from attune.clock import Clock
from attune.db.models import Sensor
from attune.db.repos import events, rules, sensors
from attune.db.repos import runtimes as runtime_rows
from attune.domain.enums import WorkerRole, WorkerStatus, WorkerType
from attune.domain.runtimes import canonical_runtime_name
from attune.messaging.messages import Envelope
from attune.messaging.topology import RULES_LIFECYCLE_QUEUE
from attune.platform import Platform
from attune.sensor.processes import SensorManager, SensorPlan, is_native
from attune.sensor.timers import (
    TIMER_SENSOR_REF,
    TIMER_TRIGGERS,
    TimerConfigError,
    build_schedule,
    run_timer,
)
from attune.services import registration

log = logging.getLogger(__name__)

SENSOR_VERSION = "0.1.0"
DEFAULT_MAX_CONCURRENT_SENSORS = 10
SOURCE_SERVICE = "sensor"
RESYNC_INTERVAL_SECONDS = 30.0


# --- worker row ----------------------------------------------------------------------------


async def detect_runtimes(platform: Platform) -> list[str]:
    """Runtime names this host can run sensors with (docs/sensors.md).

    ``sensor.runtimes`` (``$ATTUNE_SENSOR_RUNTIMES``, comma separated), then
    ``sensor.capabilities.runtimes``, then the database runtimes whose interpreter is native or
    found on ``PATH``.
    """
    configured = platform.settings.sensor.runtimes
    if configured:
        return sorted({canonical_runtime_name(n) for n in configured})
    capabilities = platform.settings.sensor.capabilities or {}
    listed = capabilities.get("runtimes")
    if isinstance(listed, list) and listed:
        return sorted({canonical_runtime_name(str(n)) for n in listed})
    names = {"native"}
    async with platform.db.session() as session:
        rows = await runtime_rows.all_rows(session)
    for row in rows:
        config = row.execution_config if isinstance(row.execution_config, Mapping) else {}
        if is_native(config) or shutil.which(str(config["interpreter"]["binary"])):
            names.add(canonical_runtime_name(row.name))
    return sorted(names)


async def register_worker(platform: Platform) -> int:
    """Create or refresh this service's ``worker`` row (role ``sensor``); return its id."""
    settings = platform.settings.sensor
    capabilities = {
        "max_concurrent_sensors": settings.max_concurrent_sensors or DEFAULT_MAX_CONCURRENT_SENSORS,
        "sensor_version": SENSOR_VERSION,
        "runtimes": await detect_runtimes(platform),
    }
    worker_id, _ = await registration.register(
        platform.db,
        registration.Registration(
            name=settings.worker_name,
            role=WorkerRole.SENSOR,
            worker_type=WorkerType.LOCAL.value,
            host=settings.host,
            capabilities=capabilities,
        ),
        now=platform.clock.now(),
    )
    return worker_id


async def set_worker_status(platform: Platform, worker_id: int, status: WorkerStatus) -> None:
    """Heartbeat (``active``) or sign off (``inactive``)."""
    await registration.set_state(platform.db, worker_id, status=status, now=platform.clock.now())


# --- built-in timers -----------------------------------------------------------------------


@dataclass
class _Timer:
    key: str
    #: None when the rule's parameters give no timer (invalid, or a past date-time).
    task: asyncio.Task[int] | None


def _timer_key(trigger_ref: str, params: Any) -> str:
    return json.dumps([trigger_ref, params], sort_keys=True, default=str)


class TimerSet:
    """One built-in timer per enabled rule on a core timer trigger."""

    def __init__(self, platform: Platform, clock: Clock) -> None:
        self.platform = platform
        self.clock = clock
        self.timers: dict[int, _Timer] = {}

    def running(self) -> set[int]:
        """Rule ids whose timer is still scheduled."""
        return {rid for rid, t in self.timers.items() if t.task is not None and not t.task.done()}

    async def apply(self, wanted: Mapping[int, tuple[str, str, Any, datetime]]) -> None:
        """Make the timers match ``wanted`` = {rule id: (rule ref, trigger ref, trigger_params, since)}.

        A rule whose trigger or parameters changed gets a new timer (its count restarts at 1);
        a finished one-shot timer is not restarted while its parameters stay the same.
        """
        for rule_id in [rid for rid in self.timers if rid not in wanted]:
            await self._cancel(rule_id)
        for rule_id, (rule_ref, trigger_ref, params, since) in wanted.items():
            key = _timer_key(trigger_ref, params)
            current = self.timers.get(rule_id)
            if current is not None and current.key == key:
                continue
            if current is not None:
                await self._cancel(rule_id)
            self.timers[rule_id] = _Timer(key, self._start(rule_id, rule_ref, trigger_ref, params, since))

    def _start(
        self, rule_id: int, rule_ref: str, trigger_ref: str, params: Any, since: datetime
    ) -> asyncio.Task[int] | None:
        now = self.clock.now()
        # Interval timers count from the moment the rule was created, enabled or changed (its
        # ``updated``), not from when this process noticed: a timer keeps its phase across
        # restarts and a new rule's first firing is one interval after the API accepted it.
        anchor = min(since, now)
        try:
            schedule = build_schedule(trigger_ref, params if isinstance(params, Mapping) else {}, anchor)
        except TimerConfigError as exc:
            log.warning("rule %s: no timer, its trigger_params are unusable: %s", rule_ref, exc)
            return None
        if schedule is None:
            log.info("rule %s: fire_at is in the past; no timer started", rule_ref)
            return None
        log.info("rule %s: %s timer started", rule_ref, trigger_ref)

        async def fire(payload: dict[str, Any]) -> None:
            await self._fire(rule_id, trigger_ref, payload)

        return asyncio.create_task(
            run_timer(schedule, fire, self.clock, start=now), name=f"timer-rule-{rule_id}"
        )

    async def _fire(self, rule_id: int, trigger_ref: str, payload: dict[str, Any]) -> None:
        async with self.platform.db.transaction() as session:
            rule = await rules.by_id(session, rule_id)
            # Re-checked at each firing, so a disabled or deleted rule never fires again, even
            # before the lifecycle message reaches this service.
            if rule is None or not rule.enabled or rule.trigger_ref != trigger_ref:
                return
            trigger = await events.trigger_by_ref(session, trigger_ref)
            if trigger is None:
                log.warning("rule %s: trigger %s is gone; firing skipped", rule.ref, trigger_ref)
                return
            await events.create_event(
                session,
                trigger,
                payload=payload,
                source=await events.sensor_id_by_ref(session, TIMER_SENSOR_REF),
                source_ref=TIMER_SENSOR_REF,
                rule=rule,
                source_service=SOURCE_SERVICE,
            )

    async def _cancel(self, rule_id: int) -> None:
        timer = self.timers.pop(rule_id)
        if timer.task is not None and not timer.task.done():
            timer.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timer.task
            log.info("timer of rule %d stopped", rule_id)

    async def stop_all(self) -> None:
        """Cancel every timer."""
        for rule_id in list(self.timers):
            await self._cancel(rule_id)


# --- desired state -------------------------------------------------------------------------


async def wanted_timers(platform: Platform) -> dict[int, tuple[str, str, Any, datetime]]:
    """{rule id: (rule ref, trigger ref, trigger_params, updated)} of enabled timer rules."""
    async with platform.db.session() as session:
        rows = await rules.enabled_on_triggers(session, TIMER_TRIGGERS)
    return {row.id: (row.ref, row.trigger_ref, row.trigger_params, row.updated) for row in rows}


def _sensor_triggers(sensor: Sensor) -> tuple[str, ...]:
    # docs/packs.md: a sensor serves every listed trigger type; registration keeps
    # the full list in config.trigger_types when there is more than one.
    config = sensor.config if isinstance(sensor.config, Mapping) else {}
    listed = config.get("trigger_types")
    refs = [str(r) for r in listed] if isinstance(listed, list) and listed else []
    if sensor.trigger_ref not in refs:
        refs.insert(0, sensor.trigger_ref)
    return tuple(refs)


async def wanted_sensors(platform: Platform) -> dict[int, SensorPlan]:
    """Plans of the enabled pack sensors that at least one enabled rule needs."""
    async with platform.db.session() as session:
        pairs = await sensors.enabled_with_runtimes(session, exclude_ref=TIMER_SENSOR_REF)
        trigger_refs = {ref for sensor, _ in pairs for ref in _sensor_triggers(sensor)}
        enabled_rules = await rules.enabled_on_triggers(session, trigger_refs) if trigger_refs else []
    plans: dict[int, SensorPlan] = {}
    for sensor, runtime_row in pairs:
        refs = _sensor_triggers(sensor)
        instances = tuple(
            {"id": r.id, "ref": r.ref, "config": r.trigger_params or {}, "trigger_ref": r.trigger_ref}
            for r in enabled_rules
            if r.trigger_ref in refs
        )
        if not instances:
            continue
        plans[sensor.id] = SensorPlan(
            sensor_id=sensor.id,
            sensor_ref=sensor.ref,
            pack_ref=sensor.pack_ref or sensor.ref.split(".", 1)[0],
            entrypoint=sensor.entrypoint,
            runtime_name=runtime_row.name,
            execution_config=runtime_row.execution_config or {},
            trigger_refs=refs,
            instances=instances,
            config=dict(sensor.config or {}),
        )
    return plans


# --- the service ---------------------------------------------------------------------------


class SensorService:
    """``attune sensor``: built-in timers and pack sensors, following the rules in the database."""

    name = "sensor"

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        resync_interval: float = RESYNC_INTERVAL_SECONDS,
        shutdown_timeout: float | None = None,
        restart_backoff: float = 1.0,
    ) -> None:
        #: None: the runtime's clock, known once the service runs.
        self.clock: Clock | None = clock
        self.resync_interval = resync_interval
        self.shutdown_timeout = shutdown_timeout
        self.restart_backoff = restart_backoff
        self.timers: TimerSet | None = None
        self.sensors: SensorManager | None = None
        self.worker_id: int | None = None
        self._lock = asyncio.Lock()
        self._platform: Platform | None = None

    async def run(self, platform: Platform, stop: asyncio.Event) -> None:
        """Register, reconcile, follow rule changes and heartbeat until ``stop`` is set."""
        self._platform = platform
        settings = platform.settings.sensor
        grace = self.shutdown_timeout if self.shutdown_timeout is not None else settings.shutdown_timeout
        self.timers = TimerSet(platform, self.clock or platform.clock)
        self.sensors = SensorManager(
            platform,
            shutdown_timeout=grace,
            restart_backoff=self.restart_backoff,
            clock=self.clock or platform.clock,
        )
        self.worker_id = await register_worker(platform)
        log.info("sensor service registered as worker %d (%s)", self.worker_id, settings.worker_name)
        await platform.bus.declare_queue(RULES_LIFECYCLE_QUEUE)
        consumer = await platform.bus.consume(RULES_LIFECYCLE_QUEUE.name, self._on_rule_message, prefetch=10)
        tasks = [
            asyncio.create_task(self._heartbeat(platform, stop, settings.heartbeat_interval)),
            asyncio.create_task(self._resync(stop)),
        ]
        try:
            await self.reconcile()
            await stop.wait()
        finally:
            with contextlib.suppress(Exception):
                await set_worker_status(platform, self.worker_id, WorkerStatus.INACTIVE)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            with contextlib.suppress(Exception):
                await consumer.cancel()
            async with self._lock:
                await self.timers.stop_all()
                await self.sensors.stop_all()
            log.info("sensor service stopped")

    async def reconcile(self) -> None:
        """Bring timers and sensor processes in line with the enabled rules (serialised)."""
        platform = self._platform
        if platform is None or self.timers is None or self.sensors is None:
            return
        async with self._lock:
            await self.timers.apply(await wanted_timers(platform))
            await self.sensors.apply(await wanted_sensors(platform))

    async def _on_rule_message(self, envelope: Envelope) -> None:
        log.debug("rule lifecycle message %s: reconciling", envelope.message_type)
        await self.reconcile()

    async def _resync(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.resync_interval)
            if stop.is_set():
                return
            try:
                await self.reconcile()
            except Exception:
                log.exception("periodic sensor reconciliation failed; retrying later")

    async def _heartbeat(self, platform: Platform, stop: asyncio.Event, interval: float) -> None:
        assert self.worker_id is not None
        while not stop.is_set():
            if await platform.clock.wait(stop, interval):
                return
            try:
                await set_worker_status(platform, self.worker_id, WorkerStatus.ACTIVE)
            except Exception:
                log.exception("sensor heartbeat failed")
