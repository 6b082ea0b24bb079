"""/api/v1/events (docs/api.md): intake, sensor attribution, EventCreated, the log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from attune.db import models
from attune.platform import Platform

EVENTS = "/api/v1/events"
T0 = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture
def held_outbox(platform: Platform) -> None:
    """Keep staged messages in the outbox table so a test can read them (the relay is paused)."""

    platform.relay.pause()


async def staged(platform: Platform, message_type: str) -> list[dict[str, Any]]:
    async with platform.db.session() as session:
        query = (
            sa.select(models.OutboxMessage)
            .where(models.OutboxMessage.message_type == message_type)
            .order_by(models.OutboxMessage.id)
        )
        return [row.body for row in (await session.execute(query)).scalars()]


async def add(platform: Platform, *rows: Any) -> None:
    async with platform.db.transaction() as session:
        for row in rows:
            session.add(row)
            await session.flush()


async def add_trigger(platform: Platform, ref: str = "demo.tick") -> models.Trigger:
    trigger = models.Trigger(ref=ref, label=ref)
    await add(platform, trigger)
    return trigger


async def add_rule(platform: Platform, trigger: models.Trigger) -> models.Rule:
    pack = models.Pack(ref="demo", label="Demo", version="1.0.0")
    await add(platform, pack)
    rule = models.Rule(
        ref="demo.on_tick",
        pack=pack.id,
        pack_ref="demo",
        label="On tick",
        description="",
        action_ref="demo.run",
        trigger=trigger.id,
        trigger_ref=trigger.ref,
        enabled=True,
    )
    await add(platform, rule)
    return rule


async def add_sensor(platform: Platform, trigger: models.Trigger, ref: str = "demo.watcher") -> models.Sensor:
    native = models.Runtime(ref="core.native", name="Native", distributions={})
    await add(platform, native)
    sensor = models.Sensor(
        ref=ref,
        label="Watcher",
        description="",
        entrypoint="watch.py",
        runtime=native.id,
        runtime_ref=native.ref,
        trigger=trigger.id,
        trigger_ref=trigger.ref,
        enabled=True,
    )
    await add(platform, sensor)
    return sensor


def sensor_client(app: Any, platform: Platform, sensor_ref: str) -> httpx.AsyncClient:
    token, _exp = platform.tokens.issue(
        999, sensor_ref, "sensor", 3600, scope="sensor", metadata={"trigger_types": ["demo.tick"]}
    )
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://attune.test",
        headers={"Authorization": f"Bearer {token}"},
    )


@pytest.mark.usefixtures("held_outbox")
async def test_create_event_returns_201_and_stages_event_created(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    trigger = await add_trigger(platform)
    body = {"trigger_ref": "demo.tick", "payload": {"n": 1}, "config": {"c": True}}
    response = await api.post(EVENTS, json=body)
    assert response.status_code == 201
    envelope = response.json()
    assert set(envelope) == {"data"}
    data = envelope["data"]
    assert data["trigger"] == trigger.id
    assert data["trigger_ref"] == "demo.tick"
    assert data["payload"] == {"n": 1}
    assert data["config"] == {"c": True}
    assert (data["source"], data["source_ref"], data["rule"], data["rule_ref"]) == (None, None, None, None)
    assert data["created"].endswith("Z")
    assert "updated" not in data
    [message] = await staged(platform, "EventCreated")
    assert message["headers"]["source_service"] == "api"
    assert message["payload"] == {
        "event_id": data["id"],
        "trigger_id": trigger.id,
        "trigger_ref": "demo.tick",
        "sensor_id": None,
        "sensor_ref": None,
        "payload": {"n": 1},
        "config": {"c": True},
    }


@pytest.mark.usefixtures("held_outbox")
async def test_null_payload_travels_as_empty_object(api: httpx.AsyncClient, platform: Platform) -> None:
    await add_trigger(platform)
    response = await api.post(EVENTS, json={"trigger_type": "demo.tick"})
    assert response.status_code == 201
    assert response.json()["data"]["payload"] is None
    [message] = await staged(platform, "EventCreated")
    assert message["payload"]["payload"] == {}
    listed = (await api.get(EVENTS)).json()["data"]
    assert listed[0]["has_payload"] is False


async def test_unknown_trigger_is_404(api: httpx.AsyncClient) -> None:
    response = await api.post(EVENTS, json={"trigger_ref": "demo.nothing"})
    assert response.status_code == 404
    assert response.json() == {"error": "Trigger 'demo.nothing' not found", "code": "NOT_FOUND"}


async def test_missing_or_empty_trigger_ref_is_422(api: httpx.AsyncClient) -> None:
    missing = await api.post(EVENTS, json={"payload": {}})
    assert missing.status_code == 422
    assert missing.headers["content-type"].startswith("text/plain")
    empty = await api.post(EVENTS, json={"trigger_ref": ""})
    assert empty.status_code == 422
    assert empty.json()["code"] == "VALIDATION_ERROR"


async def test_rule_instance_id_binds_the_event_to_the_rule(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    trigger = await add_trigger(platform)
    rule = await add_rule(platform, trigger)
    bound = await api.post(
        EVENTS, json={"trigger_ref": "demo.tick", "trigger_instance_id": f"rule_{rule.id}"}
    )
    assert (bound.json()["data"]["rule"], bound.json()["data"]["rule_ref"]) == (rule.id, "demo.on_tick")
    for other in (f"rule_{rule.id + 100}", "rule_abc", "sensor_1"):
        unbound = await api.post(EVENTS, json={"trigger_ref": "demo.tick", "trigger_instance_id": other})
        assert unbound.status_code == 201
        assert unbound.json()["data"]["rule"] is None


@pytest.mark.usefixtures("held_outbox")
async def test_sensor_token_records_the_sensor_as_source(app: Any, platform: Platform) -> None:
    trigger = await add_trigger(platform)
    sensor = await add_sensor(platform, trigger)
    async with sensor_client(app, platform, "demo.watcher") as sensor_api:
        response = await sensor_api.post(EVENTS, json={"trigger_ref": "demo.tick", "payload": {"x": 1}})
    assert response.status_code == 201
    data = response.json()["data"]
    assert (data["source"], data["source_ref"]) == (sensor.id, "demo.watcher")
    [message] = await staged(platform, "EventCreated")
    assert (message["payload"]["sensor_id"], message["payload"]["sensor_ref"]) == (sensor.id, "demo.watcher")


async def test_sensor_token_for_unknown_sensor_keeps_the_ref(app: Any, platform: Platform) -> None:
    await add_trigger(platform)
    async with sensor_client(app, platform, "demo.ghost") as sensor_api:
        response = await sensor_api.post(EVENTS, json={"trigger_ref": "demo.tick"})
    assert response.status_code == 201
    assert (response.json()["data"]["source"], response.json()["data"]["source_ref"]) == (None, "demo.ghost")


async def test_user_token_sets_no_source(api: httpx.AsyncClient, platform: Platform) -> None:
    trigger = await add_trigger(platform)
    await add_sensor(platform, trigger, ref="alice")
    response = await api.post(EVENTS, json={"trigger_ref": "demo.tick"})
    assert response.json()["data"]["source_ref"] is None


async def test_get_one_and_404(api: httpx.AsyncClient, platform: Platform) -> None:
    await add_trigger(platform)
    created = (await api.post(EVENTS, json={"trigger_ref": "demo.tick", "payload": [1, 2]})).json()["data"]
    response = await api.get(f"{EVENTS}/{created['id']}")
    assert response.status_code == 200
    assert response.json() == {"data": created}
    missing = await api.get(f"{EVENTS}/9999")
    assert missing.status_code == 404
    assert missing.json() == {"error": "Event with ID 9999 not found", "code": "NOT_FOUND"}
    assert (await api.get(f"{EVENTS}/abc")).status_code == 400


async def seed_log(platform: Platform) -> tuple[models.Trigger, models.Trigger, models.Sensor]:
    tick = await add_trigger(platform)
    tock = await add_trigger(platform, "demo.tock")
    sensor = await add_sensor(platform, tick)
    await add(
        platform,
        models.Event(trigger=tick.id, trigger_ref="demo.tick", payload={"i": 0}, created=T0),
        models.Event(
            trigger=tick.id, trigger_ref="demo.tick", rule_ref="Demo.On_Tick", created=T0 + timedelta(1)
        ),
        models.Event(trigger=tock.id, trigger_ref="demo.tock", source=sensor.id, created=T0 + timedelta(2)),
        models.Event(trigger=None, trigger_ref="demo.tock", rule_ref="other.rule", created=T0 + timedelta(3)),
    )
    return tick, tock, sensor


async def test_list_is_newest_first_with_summary_shape(api: httpx.AsyncClient, platform: Platform) -> None:
    await seed_log(platform)
    body = (await api.get(EVENTS)).json()
    assert [item["created"][:10] for item in body["data"]] == [
        "2024-01-04",
        "2024-01-03",
        "2024-01-02",
        "2024-01-01",
    ]
    assert set(body["data"][0]) == {
        "id",
        "trigger",
        "trigger_ref",
        "source",
        "source_ref",
        "rule",
        "rule_ref",
        "has_payload",
        "created",
    }
    assert [item["has_payload"] for item in body["data"]] == [False, False, False, True]
    assert body["pagination"]["page_size"] == 50
    assert body["pagination"]["total_items"] == 4


async def test_list_filters(api: httpx.AsyncClient, platform: Platform) -> None:
    tick, _tock, sensor = await seed_log(platform)

    async def ids(**params: Any) -> list[str]:
        response = await api.get(EVENTS, params=params)
        assert response.status_code == 200
        return [item["created"][:10] for item in response.json()["data"]]

    assert await ids(trigger=tick.id) == ["2024-01-02", "2024-01-01"]
    assert await ids(trigger_ref="demo.tock") == ["2024-01-04", "2024-01-03"]
    # trigger wins over trigger_ref
    assert await ids(trigger=tick.id, trigger_ref="demo.tock") == ["2024-01-02", "2024-01-01"]
    assert await ids(rule_ref="on_TICK") == ["2024-01-02"]
    assert await ids(rule_ref="_") == ["2024-01-02"]
    assert await ids(source=sensor.id) == ["2024-01-03"]
    assert await ids(trigger_ref="demo.tock", rule_ref="other") == ["2024-01-04"]


async def test_list_pagination_has_no_cap(api: httpx.AsyncClient, platform: Platform) -> None:
    trigger = await add_trigger(platform)
    await add(
        platform,
        *[
            models.Event(trigger=trigger.id, trigger_ref="demo.tick", created=T0 + timedelta(seconds=i))
            for i in range(105)
        ],
    )
    big = (await api.get(EVENTS, params={"per_page": 200})).json()
    assert len(big["data"]) == 105
    assert big["pagination"]["total_pages"] == 1
    second = (await api.get(EVENTS, params={"per_page": 50, "page": 3})).json()
    assert len(second["data"]) == 5
    assert second["pagination"] == {
        "page": 3,
        "page_size": 50,
        "total_items": 105,
        "total_pages": 3,
        "has_next": False,
        "has_previous": True,
    }
