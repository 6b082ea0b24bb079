"""/api/v1/enforcements (docs/api.md): the read-only enforcement log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from attune.db import models
from attune.platform import Platform

ENFORCEMENTS = "/api/v1/enforcements"
T0 = datetime(2024, 1, 1, tzinfo=UTC)


async def seed(platform: Platform) -> list[models.Enforcement]:
    """Four enforcements on consecutive days, oldest first."""
    rows = [
        models.Enforcement(
            rule_ref="demo.a", trigger_ref="demo.tick", event=10, status="processed", created=T0
        ),
        models.Enforcement(rule_ref="demo.a", trigger_ref="demo.tock", event=11, created=T0 + timedelta(1)),
        models.Enforcement(rule_ref="demo.b", trigger_ref="demo.tick", event=10, created=T0 + timedelta(2)),
        models.Enforcement(
            rule_ref="demo.b",
            trigger_ref="demo.tick",
            event=12,
            status="disabled",
            condition="any",
            config={"message": "hi"},
            payload={"n": 1},
            conditions=[{"field": "n", "operator": "equals", "value": 1}],
            resolved_at=T0 + timedelta(3, 60),
            created=T0 + timedelta(3),
        ),
    ]
    async with platform.db.transaction() as session:
        for row in rows:
            session.add(row)
            await session.flush()
    return rows


async def test_list_is_newest_first_with_summary_shape(api: httpx.AsyncClient, platform: Platform) -> None:
    rows = await seed(platform)
    response = await api.get(ENFORCEMENTS)
    assert response.status_code == 200
    body = response.json()
    assert [item["id"] for item in body["data"]] == [row.id for row in reversed(rows)]
    assert body["data"][0] == {
        "id": rows[3].id,
        "rule": None,
        "rule_ref": "demo.b",
        "trigger_ref": "demo.tick",
        "event": 12,
        "status": "disabled",
        "condition": "any",
        "created": "2024-01-04T00:00:00Z",
    }
    assert body["data"][-1]["condition"] == "all"
    assert body["pagination"] == {
        "page": 1,
        "page_size": 50,
        "total_items": 4,
        "total_pages": 1,
        "has_next": False,
        "has_previous": False,
    }


async def test_filter_precedence_status_rule_event(api: httpx.AsyncClient, platform: Platform) -> None:
    rows = await seed(platform)
    ids = {row.id: index for index, row in enumerate(rows)}

    async def indexes(**params: Any) -> list[int]:
        response = await api.get(ENFORCEMENTS, params=params)
        assert response.status_code == 200
        return [ids[item["id"]] for item in response.json()["data"]]

    assert await indexes(status="created") == [2, 1]
    assert await indexes(event=10) == [2, 0]
    # status wins over event and rule: only the status filter applies.
    assert await indexes(status="processed", event=12) == [0]
    # trigger_ref always applies on top of the winning filter.
    assert await indexes(status="created", trigger_ref="demo.tick") == [2]
    assert await indexes(event=10, trigger_ref="demo.tock") == []
    assert await indexes(trigger_ref="demo.tock") == [1]
    bad = await api.get(ENFORCEMENTS, params={"status": "bogus"})
    assert bad.status_code == 400


async def test_rule_filter_beats_event(api: httpx.AsyncClient, platform: Platform) -> None:
    pack = models.Pack(ref="demo", label="Demo", version="1.0.0")
    async with platform.db.transaction() as session:
        session.add(pack)
        await session.flush()
        rule = models.Rule(
            ref="demo.a",
            pack=pack.id,
            pack_ref="demo",
            label="A",
            description="",
            action_ref="demo.run",
            trigger_ref="demo.tick",
            enabled=True,
        )
        session.add(rule)
        await session.flush()
        linked = models.Enforcement(rule=rule.id, rule_ref="demo.a", trigger_ref="demo.tick", event=1)
        other = models.Enforcement(rule_ref="demo.x", trigger_ref="demo.tick", event=2)
        session.add_all([linked, other])
        await session.flush()
    response = await api.get(ENFORCEMENTS, params={"rule": rule.id, "event": 2})
    assert [item["id"] for item in response.json()["data"]] == [linked.id]
    assert response.json()["data"][0]["rule"] == rule.id


async def test_pagination_family_b_has_no_cap(api: httpx.AsyncClient, platform: Platform) -> None:
    async with platform.db.transaction() as session:
        session.add_all(
            [
                models.Enforcement(rule_ref="demo.a", trigger_ref="demo.t", created=T0 + timedelta(seconds=i))
                for i in range(103)
            ]
        )
    everything = (await api.get(ENFORCEMENTS, params={"per_page": 150})).json()
    assert len(everything["data"]) == 103
    page = (await api.get(ENFORCEMENTS, params={"per_page": 100, "page": 2, "page_size": 1})).json()
    assert len(page["data"]) == 3
    assert page["pagination"]["page_size"] == 100
    assert page["pagination"]["total_pages"] == 2


async def test_get_one_and_404(api: httpx.AsyncClient, platform: Platform) -> None:
    rows = await seed(platform)
    response = await api.get(f"{ENFORCEMENTS}/{rows[3].id}")
    assert response.status_code == 200
    assert response.json() == {
        "data": {
            "id": rows[3].id,
            "rule": None,
            "rule_ref": "demo.b",
            "trigger_ref": "demo.tick",
            "event": 12,
            "status": "disabled",
            "condition": "any",
            "created": "2024-01-04T00:00:00Z",
            "config": {"message": "hi"},
            "payload": {"n": 1},
            "conditions": [{"field": "n", "operator": "equals", "value": 1}],
            "resolved_at": "2024-01-04T00:01:00Z",
            "error": None,
        }
    }
    fresh = (await api.get(f"{ENFORCEMENTS}/{rows[1].id}")).json()["data"]
    assert (fresh["payload"], fresh["conditions"], fresh["resolved_at"], fresh["config"]) == (
        {},
        [],
        None,
        None,
    )
    missing = await api.get(f"{ENFORCEMENTS}/424242")
    assert missing.status_code == 404
    assert missing.json() == {"error": "Enforcement with ID 424242 not found", "code": "NOT_FOUND"}
