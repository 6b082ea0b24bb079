"""Pack policy files end to end: registration, loading, rate-limit counting, queue statistics."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from attune.db import models
from attune.db.types import utcnow
from attune.executor.policies import load_policies, rate_limit_violation
from attune.executor.slots import SlotManager, persist_stats
from attune.packs.parser import PackFormatError
from attune.packs.register import register_pack
from attune.platform import Platform


def write_pack(root: Path, ref: str, actions: tuple[str, ...], policies: dict[str, str]) -> Path:
    pack = root / ref
    (pack / "actions").mkdir(parents=True, exist_ok=True)
    (pack / "pack.yaml").write_text(f"ref: {ref}\nversion: 1.0.0\n")
    for name in actions:
        (pack / "actions" / f"{name}.yaml").write_text(f"name: {name}\nentry_point: {name}.sh\n")
        (pack / "actions" / f"{name}.sh").write_text("true\n")
    policy_dir = pack / "policies"
    if policy_dir.is_dir():
        for old in policy_dir.iterdir():
            old.unlink()
    policy_dir.mkdir(exist_ok=True)
    for name, text in policies.items():
        (policy_dir / f"{name}.yaml").write_text(textwrap.dedent(text))
    return pack


POLICIES = {
    "serial_deploy": "action: deploy\nthreshold: 1\nmethod: cancel\nparameters: [host]\ntags: [ops]\n",
    "pack_wide": "threshold: 3\n",
    "burst": "name: Burst\nkind: rate_limit\nthreshold: 10\nwindow_seconds: 60\n",
}


async def policy_rows(platform: Platform) -> dict[str, models.Policy]:
    async with platform.db.session() as session:
        return {p.ref: p for p in (await session.execute(sa.select(models.Policy))).scalars()}


async def action_ids(platform: Platform) -> dict[str, int]:
    async with platform.db.session() as session:
        return {ref: id for ref, id in await session.execute(sa.select(models.Action.ref, models.Action.id))}


async def test_policy_files_become_policy_rows(platform: Platform, tmp_path: Path) -> None:
    result = await register_pack(platform, write_pack(tmp_path, "ops", ("deploy", "check"), POLICIES))
    rows = await policy_rows(platform)
    assert set(rows) == {"ops.serial_deploy", "ops.pack_wide", "ops.burst"}
    deploy = rows["ops.serial_deploy"]
    assert deploy.action == (await action_ids(platform))["ops.deploy"]
    assert (deploy.action_ref, deploy.pack, deploy.pack_ref) == ("ops.deploy", result.pack.id, "ops")
    assert (deploy.kind, deploy.threshold, deploy.method, deploy.window_seconds) == (
        "concurrency",
        1,
        "cancel",
        None,
    )
    assert (deploy.parameters, deploy.tags, deploy.name) == (["host"], ["ops"], "Serial Deploy")
    wide = rows["ops.pack_wide"]
    assert (wide.action, wide.action_ref, wide.pack, wide.method) == (None, None, result.pack.id, "enqueue")
    burst = rows["ops.burst"]
    assert (burst.kind, burst.threshold, burst.window_seconds, burst.name) == ("rate_limit", 10, 60, "Burst")
    assert result.counts["policies_created"] == 3


async def test_reregistering_updates_and_removes_policies(platform: Platform, tmp_path: Path) -> None:
    await register_pack(platform, write_pack(tmp_path, "ops", ("deploy",), POLICIES))
    before = await policy_rows(platform)
    changed = {"serial_deploy": "action: deploy\nthreshold: 2\n", "pack_wide": POLICIES["pack_wide"]}
    result = await register_pack(
        platform, write_pack(tmp_path, "ops", ("deploy",), changed), allow_existing=True
    )
    after = await policy_rows(platform)
    assert set(after) == {"ops.serial_deploy", "ops.pack_wide"}
    assert after["ops.serial_deploy"].id == before["ops.serial_deploy"].id
    assert (after["ops.serial_deploy"].threshold, after["ops.serial_deploy"].method) == (2, "enqueue")
    assert after["ops.pack_wide"].updated == before["ops.pack_wide"].updated  # unchanged row untouched
    assert (result.counts["policies_updated"], result.counts["policies_removed"]) == (1, 1)


async def test_policy_on_another_packs_action(platform: Platform, tmp_path: Path) -> None:
    await register_pack(platform, write_pack(tmp_path, "tools", ("ping",), {}))
    await register_pack(
        platform, write_pack(tmp_path, "ops", ("deploy",), {"ping": "action: tools.ping\nthreshold: 4\n"})
    )
    row = (await policy_rows(platform))["ops.ping"]
    assert row.action == (await action_ids(platform))["tools.ping"]
    assert row.pack_ref == "ops"


async def test_policy_on_unknown_action_rejects_the_pack(platform: Platform, tmp_path: Path) -> None:
    pack = write_pack(tmp_path, "ops", ("deploy",), {"ghost": "action: nowhere.run\nthreshold: 1\n"})
    with pytest.raises(PackFormatError) as caught:
        await register_pack(platform, pack)
    assert caught.value.message.startswith("policies/ghost.yaml: action 'nowhere.run'")
    async with platform.db.session() as session:  # the whole registration was rolled back
        assert (await session.execute(sa.select(models.Pack).where(models.Pack.ref == "ops"))).first() is None


async def test_malformed_policy_file_is_a_422_through_the_api(api: httpx.AsyncClient, tmp_path: Path) -> None:
    pack = write_pack(tmp_path, "ops", ("deploy",), {"bad": "kind: rate_limit\nthreshold: 3\n"})
    response = await api.post("/api/v1/packs/register", json={"path": str(pack), "skip_tests": True})
    assert response.status_code == 422
    assert "policies/bad.yaml" in response.text and "window_seconds" in response.text


async def test_loaded_policies_resolve_by_scope(platform: Platform, tmp_path: Path) -> None:
    result = await register_pack(platform, write_pack(tmp_path, "ops", ("deploy", "check"), POLICIES))
    ids = await action_ids(platform)
    async with platform.db.session() as session:
        policies = await load_policies(session)
    deploy = policies.concurrency_for(ids["ops.deploy"], result.pack.id)
    check = policies.concurrency_for(ids["ops.check"], result.pack.id)
    assert deploy is not None and (deploy.threshold, deploy.method) == (1, "cancel")
    assert check is not None and check.threshold == 3
    assert [p.window_seconds for p in policies.rate_limits_for(ids["ops.check"], result.pack.id)] == [60]


# -- rate limits -------------------------------------------------------------------------------


async def add_executions(platform: Platform, action_id: int, ref: str, ages: list[float]) -> None:
    now = utcnow()
    async with platform.db.transaction() as session:
        for age in ages:
            session.add(
                models.Execution(action=action_id, action_ref=ref, created=now - timedelta(seconds=age))
            )


async def test_rate_limit_counts_executions_in_scope_and_window(platform: Platform, tmp_path: Path) -> None:
    rate = "kind: rate_limit\nwindow_seconds: 60\n"
    policies = {
        "per_action": f"action: deploy\nthreshold: 2\n{rate}",
        "per_pack": f"threshold: 3\n{rate}",
    }
    ops = (await register_pack(platform, write_pack(tmp_path, "ops", ("deploy", "check"), policies))).pack.id
    tools = (await register_pack(platform, write_pack(tmp_path, "tools", ("ping",), {}))).pack.id
    ids = await action_ids(platform)
    deploy, check, ping = ids["ops.deploy"], ids["ops.check"], ids["tools.ping"]
    async with platform.db.transaction() as session:
        # A global rate limit has neither pack nor action (created outside packs).
        session.add(
            models.Policy(
                ref="global.rate",
                method="enqueue",
                threshold=4,
                kind="rate_limit",
                window_seconds=60,
                name="G",
            )
        )

    async def violated(action_id: int, pack_id: int) -> str | None:
        async with platform.db.session() as session:
            policies = (await load_policies(session)).rate_limits_for(action_id, pack_id)
            hit = await rate_limit_violation(
                session, policies, action_id=action_id, pack_id=pack_id, now=utcnow()
            )
        if hit is None:
            return None
        return {p.id: ref for ref, p in (await policy_rows(platform)).items()}[hit.id]

    # One recent deploy plus old ones outside the window: nothing is violated yet.
    await add_executions(platform, deploy, "ops.deploy", [5, 120, 300])
    assert await violated(deploy, ops) is None
    await add_executions(platform, deploy, "ops.deploy", [1])
    assert await violated(deploy, ops) == "ops.per_action"  # 2 recent deploys >= 2
    assert await violated(check, ops) is None  # pack: 2 < 3
    await add_executions(platform, check, "ops.check", [1])
    assert await violated(check, ops) == "ops.per_pack"  # pack: 3 >= 3
    assert await violated(ping, tools) is None  # global: 3 < 4
    await add_executions(platform, ping, "tools.ping", [1])
    assert await violated(ping, tools) == "global.rate"
    # The first violation in action → pack → global order wins.
    assert await violated(deploy, ops) == "ops.per_action"


# -- queue statistics through the API ---------------------------------------------------------


async def test_persisted_queue_stats_are_served_by_the_api(
    api: httpx.AsyncClient, platform: Platform, tmp_path: Path
) -> None:
    await register_pack(platform, write_pack(tmp_path, "ops", ("deploy",), {}))
    deploy = (await action_ids(platform))["ops.deploy"]
    url = "/api/v1/actions/ops.deploy/queue-stats"
    missing = await api.get(url)
    assert missing.status_code == 404
    assert missing.json()["error"] == "No queue statistics available for action 'ops.deploy'"

    slots = SlotManager()
    await slots.acquire(deploy, 2, ticket=1)
    async with platform.db.transaction() as session:
        await persist_stats(session, {a: slots.snapshot(a) for a in slots.dirty_actions()})
    data = (await api.get(url)).json()["data"]
    assert data["action_ref"] == "ops.deploy"
    assert (data["active_count"], data["max_concurrent"], data["queue_length"], data["total_enqueued"]) == (
        1,
        2,
        0,
        1,
    )
