"""Webhook rate limiting under concurrency (docs/webhooks.md): the window is counted and the event
inserted as one step, so a burst of simultaneous posts accepts exactly the limit, on SQLite and on
PostgreSQL."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import sqlalchemy as sa

from attune.db import models
from attune.platform import Platform
from tests.integration.test_webhooks import enable, put_config, trigger_id  # noqa: F401 - fixture

LIMIT = 5
POSTS = 50


@pytest.mark.usefixtures("trigger_id")
async def test_fifty_concurrent_posts_accept_exactly_the_limit(
    api: httpx.AsyncClient,
    client: httpx.AsyncClient,
    platform: Platform,
) -> None:
    key = await enable(api)
    await put_config(api, {"rate_limit": {"enabled": True, "requests": LIMIT, "window_seconds": 3600}})
    url = f"/api/v1/webhooks/{key}"
    responses = await asyncio.gather(*(client.post(url, json={"payload": n}) for n in range(POSTS)))
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] * LIMIT + [429] * (POSTS - LIMIT)
    async with platform.db.session() as session:
        stored = await session.scalar(sa.select(sa.func.count()).select_from(models.Event))
    assert stored == LIMIT
