"""The sensor service (docs/sensors.md): core timers per rule and pack sensor processes."""

from __future__ import annotations

import asyncio
import json
import os
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from attune.db import models
from attune.messaging.messages import Envelope
from attune.messaging.topology import EVENTS_EXCHANGE, QueueSpec
from attune.packs.register import register_pack
from attune.platform import Platform
from attune.sensor import SensorService
from attune.testing.clock import FakeClock


@pytest.fixture
async def core(platform: Platform, packs_dir: Path) -> None:
    await register_pack(platform, packs_dir / "core", skip_tests=True)


@pytest.fixture
async def service(platform: Platform, core: None) -> AsyncIterator[SensorService]:
    """A running sensor service with a unique worker name and a short stop grace."""
    platform.settings.sensor.worker_name = f"sensor-test-{uuid.uuid4().hex[:6]}"
    platform.settings.sensor.heartbeat_interval = 0.5
    svc = SensorService(shutdown_timeout=2, restart_backoff=0.05)
    stop = asyncio.Event()
    task = asyncio.create_task(svc.run(platform, stop))
    await wait_for(lambda: svc.worker_id is not None and svc.timers is not None)
    yield svc
    stop.set()
    await asyncio.wait_for(task, 15)


@pytest.fixture
async def published(platform: Platform) -> AsyncIterator[list[Envelope]]:
    """Every ``EventCreated`` published from now on."""
    received: list[Envelope] = []

    async def handler(envelope: Envelope) -> None:
        received.append(envelope)

    name = f"test.sensor.{uuid.uuid4().hex[:8]}"
    await platform.bus.declare_queue(QueueSpec(name, ((EVENTS_EXCHANGE, "event.created"),)))
    consumer = await platform.bus.consume(name, handler)
    yield received
    await consumer.cancel()


async def wait_for(check: Callable[[], Any], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def settle(platform: Platform) -> None:
    """Deliver the staged rule messages and let the service handle them."""
    await platform.relay.flush()
    await platform.bus.join(timeout=10)


async def create_rule(api: httpx.AsyncClient, ref: str, trigger: str, params: dict[str, Any]) -> int:
    response = await api.post(
        "/api/v1/rules",
        json={
            "ref": ref,
            "pack_ref": "core",
            "label": ref,
            "action_ref": "core.noop",
            "trigger_ref": trigger,
            "trigger_params": params,
        },
    )
    assert response.status_code == 201, response.text
    rule_id: int = response.json()["data"]["id"]
    return rule_id


async def events_by_rule(platform: Platform) -> dict[int | None, list[models.Event]]:
    async with platform.db.session() as session:
        rows = (await session.execute(sa.select(models.Event).order_by(models.Event.id))).scalars().all()
    grouped: dict[int | None, list[models.Event]] = {}
    for row in rows:
        grouped.setdefault(row.rule, []).append(row)
    return grouped


async def test_registers_heartbeats_and_signs_off(
    platform: Platform, fake_clock: FakeClock, core: None
) -> None:
    platform.settings.sensor.worker_name = "sensor-hb"
    platform.settings.sensor.heartbeat_interval = 0.2
    svc = SensorService(shutdown_timeout=1)
    stop = asyncio.Event()
    task = asyncio.create_task(svc.run(platform, stop))
    await wait_for(lambda: svc.worker_id is not None)

    async def worker() -> models.Worker:
        async with platform.db.session() as session:
            row = await session.get(models.Worker, svc.worker_id)
            assert row is not None
            return row

    first = await worker()
    assert (first.name, first.worker_role, first.worker_type, first.status) == (
        "sensor-hb",
        "sensor",
        "local",
        "active",
    )
    assert first.capabilities["sensor_version"] and "native" in first.capabilities["runtimes"]
    assert first.last_heartbeat == fake_clock.now()
    await fake_clock.sleeping(1)
    fake_clock.advance(0.1)
    await fake_clock.sleeping(1)
    assert (await worker()).last_heartbeat == first.last_heartbeat  # not yet due
    fake_clock.advance(0.1)
    await fake_clock.sleeping(1)  # it beat, then went back to sleep
    later = await worker()
    assert later.last_heartbeat == fake_clock.now()
    stop.set()
    await asyncio.wait_for(task, 10)
    assert (await worker()).status == "inactive"


async def tick(clock: FakeClock, seconds: float, timers: int) -> None:
    """Advance ``seconds`` and wait until the ``timers`` still running and the heartbeat are
    parked again (so each firing due by then has been written: a timer fires before it sleeps)."""
    clock.advance(seconds)
    await clock.sleeping(timers + 1)


async def test_interval_timer_follows_the_rule_lifecycle(
    api: httpx.AsyncClient,
    platform: Platform,
    fake_clock: FakeClock,
    service: SensorService,
    published: list[Envelope],
) -> None:
    tick_rule = await create_rule(api, "core.tick", "core.intervaltimer", {"interval": 1, "unit": "seconds"})
    idle = await create_rule(api, "core.hourly", "core.intervaltimer", {"interval": 1, "unit": "hours"})
    # Two rules on the other timer triggers, running alongside.
    fire_at = (fake_clock.now() + timedelta(seconds=1)).isoformat().replace("+00:00", "Z")
    once = await create_rule(api, "core.once", "core.datetimetimer", {"fire_at": fire_at})
    cron = await create_rule(api, "core.cron", "core.crontimer", {"expression": "* * * * * *"})
    await settle(platform)
    assert service.timers is not None and service.timers.clock is fake_clock
    assert service.timers.running() == {tick_rule, idle, once, cron}
    await fake_clock.sleeping(4 + 1)

    for _ in range(3):  # three seconds pass
        await tick(fake_clock, 1, timers=3)
    await wait_for(lambda: once not in service.timers.running())  # type: ignore[union-attr]
    grouped = await events_by_rule(platform)
    ticks = grouped.get(tick_rule, [])
    assert len(ticks) == 3  # one per second, the first after one interval
    assert idle not in grouped  # only the firing rule is bound to its events
    assert set(grouped) == {tick_rule, once, cron}
    first = ticks[0]
    assert (first.trigger_ref, first.rule_ref, first.source_ref) == (
        "core.intervaltimer",
        "core.tick",
        "core.interval_timer_sensor",
    )
    assert first.payload["type"] == "interval"
    assert first.payload["interval_seconds"] == 1
    assert [e.payload["execution_count"] for e in ticks] == [1, 2, 3]
    # The one-shot rule fired exactly once and its timer is gone.
    assert len(grouped.get(once, [])) == 1
    assert grouped[once][0].payload["type"] == "one_shot"
    # The every-second cron rule fired every second.
    assert len(grouped.get(cron, [])) == 3
    assert grouped[cron][0].payload["expression"] == "* * * * * *"
    # Each event was announced with EventCreated, staged in the firing's transaction.
    await settle(platform)
    announced = {e.payload["event_id"]: e for e in published}
    assert {e.id for e in ticks} <= set(announced)
    assert announced[first.id].headers.source_service == "sensor"
    assert announced[first.id].payload["trigger_ref"] == "core.intervaltimer"

    # Disable: no more events.
    assert (await api.post("/api/v1/rules/core.tick/disable")).status_code == 200
    await settle(platform)
    assert tick_rule not in service.timers.running()
    before = len((await events_by_rule(platform)).get(tick_rule, []))
    await tick(fake_clock, 1.5, timers=2)
    assert len((await events_by_rule(platform)).get(tick_rule, [])) == before

    # Re-enable: events again, counting from 1.
    assert (await api.post("/api/v1/rules/core.tick/enable")).status_code == 200
    await settle(platform)
    await fake_clock.sleeping(3 + 1)
    await tick(fake_clock, 1, timers=3)
    again = (await events_by_rule(platform)).get(tick_rule, [])[before:]
    assert len(again) == 1 and again[0].payload["execution_count"] == 1

    # Delete: stopped.
    assert (await api.delete("/api/v1/rules/core.tick")).status_code == 200
    await settle(platform)
    assert tick_rule not in service.timers.running()
    async with platform.db.session() as session:
        count_query = (
            sa.select(sa.func.count()).select_from(models.Event).where(models.Event.rule_ref == "core.tick")
        )
        after_delete = (await session.execute(count_query)).scalar_one()
    await tick(fake_clock, 1.3, timers=2)
    async with platform.db.session() as session:
        assert (await session.execute(count_query)).scalar_one() == after_delete


async def test_changed_params_restart_the_timer_and_bad_params_start_none(
    api: httpx.AsyncClient, platform: Platform, fake_clock: FakeClock, service: SensorService
) -> None:
    rule = await create_rule(api, "core.slow", "core.intervaltimer", {"interval": 1, "unit": "hours"})
    past = await create_rule(api, "core.past", "core.datetimetimer", {"fire_at": "2001-01-01T00:00:00Z"})
    await settle(platform)
    assert service.timers is not None
    assert rule in service.timers.running() and past not in service.timers.running()
    response = await api.put(
        "/api/v1/rules/core.slow", json={"trigger_params": {"interval": 1, "unit": "seconds"}}
    )
    assert response.status_code == 200
    await settle(platform)
    await fake_clock.sleeping(1 + 1)
    await tick(fake_clock, 1, timers=1)
    assert len((await events_by_rule(platform)).get(rule, [])) == 1
    assert past not in await events_by_rule(platform)


SENSOR_SCRIPT = """\
import json, os, pathlib, signal, sys, time
here = pathlib.Path(__file__).parent
if (here / "ignore_term").exists():
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
with open(here / "starts.log", "a") as log:
    log.write(f"{os.getpid()}\\n")
marker = {
    "pid": os.getpid(),
    "pgid": os.getpgid(0),
    "triggers": json.loads(os.environ["ATTUNE_SENSOR_TRIGGERS"]),
    "token": os.environ.get("ATTUNE_API_TOKEN", ""),
    "sensor_ref": os.environ["ATTUNE_SENSOR_REF"],
    "sensor_id": os.environ["ATTUNE_SENSOR_ID"],
    "exchange": os.environ["ATTUNE_MQ_EXCHANGE"],
    "api_url": os.environ["ATTUNE_API_URL"],
}
(here / "marker.json").write_text(json.dumps(marker))
print("watching", flush=True)
print("a warning", file=sys.stderr, flush=True)
if os.environ.get("CRASH") or (here / "crash").exists():
    sys.exit(3)
while True:
    time.sleep(0.1)
"""


def write_sensor_pack(root: Path) -> Path:
    pack = root / "watch"
    (pack / "triggers").mkdir(parents=True)
    (pack / "sensors").mkdir()
    (pack / "pack.yaml").write_text("ref: watch\nversion: 1.0.0\n")
    (pack / "triggers" / "ping.yaml").write_text("ref: watch.ping\nlabel: Ping\n")
    (pack / "sensors" / "watcher.yaml").write_text(
        textwrap.dedent(
            """\
            ref: watch.watcher
            label: Watcher
            runner_type: python
            entry_point: watcher.py
            trigger_types: [ping]
            """
        )
    )
    (pack / "sensors" / "watcher.py").write_text(SENSOR_SCRIPT)
    return pack


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
async def watch_pack(platform: Platform, packs_dir: Path, core: None) -> Path:
    pack = write_sensor_pack(packs_dir)
    result = await register_pack(platform, pack, skip_tests=True)
    assert result.counts.get("sensors", result.counts.get("sensor")) != 0, result.warnings
    return pack / "sensors"


async def test_pack_sensor_runs_while_a_rule_needs_it(
    api: httpx.AsyncClient, platform: Platform, service: SensorService, watch_pack: Path
) -> None:
    marker = watch_pack / "marker.json"
    await asyncio.sleep(0.3)
    assert not marker.exists()  # no enabled rule on watch.ping yet

    rule = await create_rule(api, "core.on_ping", "watch.ping", {"level": "high"})
    await settle(platform)
    await wait_for(marker.exists)
    data = json.loads(marker.read_text())
    assert data["triggers"] == [
        {"id": rule, "ref": "core.on_ping", "config": {"level": "high"}, "trigger_ref": "watch.ping"}
    ]
    assert data["sensor_ref"] == "watch.watcher"
    assert data["exchange"].endswith("attune.events")
    assert data["pgid"] == data["pid"]  # its own process group
    claims = platform.tokens.decode(data["token"])
    assert (claims.token_type, claims.login, claims.scope) == ("sensor", "watch.watcher", "sensor")
    assert claims.metadata == {"sensor_ref": "watch.watcher", "trigger_types": ["watch.ping"]}
    async with platform.db.session() as session:
        sensor_id = (
            await session.execute(sa.select(models.Sensor.id).where(models.Sensor.ref == "watch.watcher"))
        ).scalar_one()
    assert data["sensor_id"] == str(sensor_id)
    # The sensor token is accepted by the API and records the sensor as the event source.
    posted = await api.post(
        "/api/v1/events",
        json={"trigger_ref": "watch.ping", "payload": {"n": 1}},
        headers={"Authorization": f"Bearer {data['token']}"},
    )
    assert posted.status_code == 201
    assert (posted.json()["data"]["source"], posted.json()["data"]["source_ref"]) == (
        sensor_id,
        "watch.watcher",
    )
    pid = data["pid"]
    assert alive(pid)

    # A second rule restarts the sensor with both trigger instances.
    marker.unlink()
    await create_rule(api, "core.on_ping2", "watch.ping", {})
    await settle(platform)
    await wait_for(marker.exists)
    restarted = json.loads(marker.read_text())
    assert [t["ref"] for t in restarted["triggers"]] == ["core.on_ping", "core.on_ping2"]
    await wait_for(lambda: not alive(pid))

    # Disabling every rule stops it: the process is gone.
    assert (await api.post("/api/v1/rules/core.on_ping/disable")).status_code == 200
    assert (await api.delete("/api/v1/rules/core.on_ping2")).status_code == 200
    await settle(platform)
    await wait_for(lambda: not alive(restarted["pid"]))
    assert service.sensors is not None and service.sensors.processes == {}


async def test_an_exiting_sensor_is_restarted_three_times_after_its_backoff(
    api: httpx.AsyncClient,
    platform: Platform,
    fake_clock: FakeClock,
    service: SensorService,
    watch_pack: Path,
) -> None:
    def starts() -> int:
        log = watch_pack / "starts.log"
        return len(log.read_text().split()) if log.exists() else 0

    (watch_pack / "crash").write_text("")
    await create_rule(api, "core.on_ping", "watch.ping", {})
    await settle(platform)
    assert service.sensors is not None
    # restart_backoff 0.05 doubles each time; the heartbeat (0.5 s) is not due within these.
    for restarted, backoff in enumerate((0.05, 0.1, 0.2)):
        await fake_clock.sleeping(2)  # the heartbeat and the sensor's restart back-off
        assert starts() == restarted + 1
        fake_clock.advance(backoff * 0.9)
        assert fake_clock.pending == 2  # not yet due
        fake_clock.advance(backoff * 0.1 + 1e-6)  # (a margin for float sums)
    await wait_for(lambda: any(p.failed for p in service.sensors.processes.values()))  # type: ignore[union-attr]
    assert starts() == 4  # the first run and three restarts
    assert [s for s in fake_clock.sleeps if s != 0.5] == [0.05, 0.1, 0.2]
    fake_clock.advance(60)  # a failed sensor is not restarted however long one waits
    await fake_clock.sleeping(1)  # the heartbeat's next round
    assert starts() == 4


async def test_a_sensor_ignoring_sigterm_is_killed_after_the_grace(
    api: httpx.AsyncClient, platform: Platform, service: SensorService, watch_pack: Path
) -> None:
    (watch_pack / "ignore_term").write_text("")
    assert service.sensors is not None
    service.sensors.shutdown_timeout = 0.5
    marker = watch_pack / "marker.json"
    await create_rule(api, "core.on_ping", "watch.ping", {})
    await settle(platform)
    await wait_for(marker.exists)
    pid = json.loads(marker.read_text())["pid"]
    started = time.monotonic()
    assert (await api.post("/api/v1/rules/core.on_ping/disable")).status_code == 200
    await settle(platform)
    await wait_for(lambda: not alive(pid))
    assert time.monotonic() - started >= 0.4  # SIGTERM was ignored; SIGKILL came after the grace
