"""Action-level retry: ``retry: {count, delay, on}`` in pack YAML and the API decides which
attempts are retried; the chain is visible (issue #12 item 4)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from attune.db import models
from attune.packs.register import register_pack
from attune.platform import Platform

# ``clean_bus`` and ``settings`` are the executor tests' fixtures: short timings, and RabbitMQ queues
# deleted after each test (a message left in a queue would reach the next test's executor).
from tests.integration.test_executor import (  # noqa: F401
    EXECUTE,
    add_worker,
    clean_bus,
    complete,
    eventually,
    get,
    rows,
    running_executor,
    seed_pack,
    settings,
    settle,
)


def write_pack(root: Path) -> Path:
    pack = root / "rt"
    (pack / "actions").mkdir(parents=True)
    (pack / "pack.yaml").write_text('ref: rt\nlabel: Retry\nversion: "1.0.0"\n')
    (pack / "actions" / "flaky.yaml").write_text(
        "name: flaky\nentry_point: flaky.sh\nretry:\n  count: 2\n  delay: 5\n  on: [timeout]\n"
    )
    (pack / "actions" / "legacy.yaml").write_text("name: legacy\nentry_point: legacy.sh\nmax_retries: 3\n")
    (pack / "actions" / "plain.yaml").write_text("name: plain\nentry_point: plain.sh\n")
    for name in ("flaky", "legacy", "plain"):
        (pack / "actions" / f"{name}.sh").write_text("true\n")
    return pack


async def test_pack_yaml_retry_and_max_retries_are_registered(api: httpx.AsyncClient, tmp_path: Path) -> None:
    response = await api.post("/api/v1/packs/register", json={"path": str(write_pack(tmp_path))})
    assert response.status_code == 201, response.text
    flaky = (await api.get("/api/v1/actions/rt.flaky")).json()["data"]
    assert flaky["retry"] == {"count": 2, "delay": 5, "on": ["timeout"]}
    assert flaky["max_retries"] == 2
    legacy = (await api.get("/api/v1/actions/rt.legacy")).json()["data"]
    assert legacy["retry"] == {"count": 3, "delay": None, "on": ["failed", "timeout"]}
    plain = (await api.get("/api/v1/actions/rt.plain")).json()["data"]
    assert (plain["retry"]["count"], plain["max_retries"]) == (0, 0)


async def test_an_invalid_retry_block_names_the_file(platform: Platform, tmp_path: Path) -> None:
    pack = write_pack(tmp_path)
    (pack / "actions" / "flaky.yaml").write_text("name: flaky\nentry_point: flaky.sh\nretry: {on: [crash]}\n")
    try:
        await register_pack(platform, pack)
    except Exception as exc:
        assert "actions/flaky.yaml" in str(exc) and "retry.on" in str(exc)
    else:
        raise AssertionError("registration accepted an invalid retry block")


async def test_the_api_sets_the_retry_policy(api: httpx.AsyncClient) -> None:
    assert (
        await api.post("/api/v1/packs", json={"ref": "demo", "label": "D", "version": "1.0.0"})
    ).status_code == 201
    body = {"ref": "demo.a", "pack_ref": "demo", "label": "A", "entrypoint": "echo a"}
    created = await api.post("/api/v1/actions", json={**body, "retry": {"count": 2, "on": ["failed"]}})
    assert created.status_code == 201, created.text
    assert created.json()["data"]["retry"] == {"count": 2, "delay": None, "on": ["failed"]}
    legacy = await api.put("/api/v1/actions/demo.a", json={"max_retries": 4})
    assert legacy.json()["data"]["retry"] == {"count": 4, "delay": None, "on": ["failed", "timeout"]}
    bad = await api.put("/api/v1/actions/demo.a", json={"retry": {"count": 1, "on": ["crash"]}})
    assert bad.status_code == 422


async def test_failed_attempts_are_retried_per_policy_and_the_chain_is_visible(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    _, action, _ = await seed_pack(platform)
    async with platform.db.transaction() as session:
        row = await session.get(models.Action, action.id)
        assert row is not None
        row.max_retries, row.retry_delay_seconds, row.retry_on = 2, 0, ["failed"]
    await add_worker(platform, "w-retry-policy", ["shell"])
    async with running_executor(platform):
        first = (await api.post(EXECUTE, json={"action_ref": action.ref})).json()["data"]
        await settle(platform)
        # An ordinary action failure (not an infrastructure error) is retried: the policy decides.
        await complete(platform, first["id"], "failed", {"succeeded": False, "error": "exit code 1"})
        await settle(platform)

        async def attempts() -> list[models.Execution]:
            return await rows(platform, models.Execution, models.Execution.original_execution == first["id"])

        [second] = await eventually(attempts, timeout=5)
        assert (second.retry_count, second.retry_reason) == (1, "action_failed")
        await settle(platform)
        await complete(platform, second.id, "failed", {"succeeded": False, "error": "exit code 1"})
        await settle(platform)

        async def two_retries() -> list[models.Execution] | None:
            found = await attempts()
            return found if len(found) == 2 else None

        retried = await eventually(two_retries, timeout=5)
        third = retried[-1]
        await settle(platform)
        await complete(platform, third.id, "failed", {"succeeded": False, "error": "exit code 1"})
        await asyncio.sleep(0.5)
        await settle(platform)
        assert len(await attempts()) == 2  # count: 2 is spent

        chain = (await api.get("/api/v1/executions", params={"original_execution": first["id"]})).json()
        assert sorted((e["id"], e["retry_count"]) for e in chain["data"]) == [
            (first["id"], 0),
            (second.id, 1),
            (third.id, 2),
        ]
        shown = (await api.get(f"/api/v1/executions/{third.id}")).json()["data"]
        assert (shown["original_execution"], shown["retry_count"], shown["max_retries"]) == (
            first["id"],
            2,
            2,
        )


async def test_a_timeout_is_not_retried_when_the_policy_covers_failures_only(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    _, action, _ = await seed_pack(platform)
    async with platform.db.transaction() as session:
        row = await session.get(models.Action, action.id)
        assert row is not None
        row.max_retries, row.retry_delay_seconds, row.retry_on = 2, 0, ["failed"]
    await add_worker(platform, "w-timeout", ["shell"])
    async with running_executor(platform):
        first = (await api.post(EXECUTE, json={"action_ref": action.ref})).json()["data"]
        await settle(platform)
        await complete(platform, first["id"], "timeout", {"succeeded": False, "error": "timed out"})
        await asyncio.sleep(0.5)
        await settle(platform)
        assert len(await rows(platform, models.Execution)) == 1
        assert (await get(platform, models.Execution, first["id"])).status == "timeout"
