"""Inquiries: the routes (docs/api.md) and the pause / answer / expire lifecycle."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from attune.db import models
from attune.db.types import utcnow
from attune.executor.inquiries import InquiryTimeoutMonitor
from attune.executor.liveness import LivenessMonitor
from attune.platform import Platform
from attune.testing.clock import FakeClock
from attune.worker.run_execution import finish
from tests.identities import client_for, make_identity

APPROVAL_SCHEMA = {
    "approved": {"type": "boolean", "required": True},
    "comment": {"type": "string"},
}


@pytest.fixture(autouse=True)
def keep_outbox(platform: Platform) -> None:
    """Keep staged messages in the outbox so the tests can read them."""
    platform.relay.pause()


async def _add(platform: Platform, *rows: Any) -> None:
    async with platform.db.transaction() as session:
        for row in rows:
            session.add(row)


async def _worker(platform: Platform, *, heartbeat_age: float = 0.0) -> models.Worker:
    worker = models.Worker(
        name=f"w-{heartbeat_age}",
        worker_type="local",
        worker_role="action",
        status="active",
        capabilities={"runtimes": ["shell"], "max_concurrent_executions": 1},
        last_heartbeat=utcnow() - timedelta(seconds=heartbeat_age),
    )
    await _add(platform, worker)
    return worker


async def _execution(
    platform: Platform, *, status: str = "running", worker: int | None = None
) -> models.Execution:
    execution = models.Execution(action_ref="demo.ask", status=status, worker=worker, config={})
    await _add(platform, execution)
    return execution


async def _waiting(platform: Platform, request: dict[str, Any], *, worker: int = 7) -> models.Execution:
    """An execution whose worker finished it with an ``__inquiry`` request in its parsed output."""
    execution = await _execution(platform, worker=worker)
    result = {"exit_code": 0, "duration_ms": 5, "succeeded": True, "data": {"__inquiry": request}}
    status = await finish(platform.db, execution, "completed", result, action_id=0)
    assert status == "running"
    return execution


async def _staged(platform: Platform, message_type: str) -> list[dict[str, Any]]:
    async with platform.db.session() as session:
        rows = (
            await session.execute(
                sa.select(models.OutboxMessage)
                .where(models.OutboxMessage.message_type == message_type)
                .order_by(models.OutboxMessage.id)
            )
        ).scalars()
        return [row.body["payload"] for row in rows]


async def _row(platform: Platform, model: Any, row_id: int) -> Any:
    async with platform.db.session() as session:
        return await session.get(model, row_id)


async def _only_inquiry(api: httpx.AsyncClient, execution_id: int) -> dict[str, Any]:
    response = await api.get(f"/api/v1/executions/{execution_id}/inquiries")
    assert response.status_code == 200, response.text
    [inquiry] = response.json()["data"]
    return inquiry  # type: ignore[no-any-return]


async def _client_for(app: Any, platform: Platform, login: str, password_hash: str) -> httpx.AsyncClient:
    # An operator may respond to inquiries in general; the assignee rule still applies.
    identity = await make_identity(platform, login, password_hash, "core.operator")
    return client_for(app, platform, identity)


# --------------------------------------------------------------------------- the lifecycle


async def test_inquiry_request_keeps_the_execution_waiting_without_a_worker(
    api: httpx.AsyncClient, platform: Platform, user: models.Identity
) -> None:
    execution = await _waiting(
        platform,
        {
            "prompt": "Deploy?",
            "response_schema": APPROVAL_SCHEMA,
            "assigned_to": "alice",
            "timeout_seconds": 60,
        },
    )
    stored = await _row(platform, models.Execution, execution.id)
    assert stored.status == "running" and stored.worker is None
    inquiry = await _only_inquiry(api, execution.id)
    assert inquiry["status"] == "pending" and inquiry["assigned_to"] == user.id
    assert stored.result["__inquiry_id"] == inquiry["id"]
    full = (await api.get(f"/api/v1/inquiries/{inquiry['id']}")).json()["data"]
    assert full["prompt"] == "Deploy?" and full["response_schema"] == APPROVAL_SCHEMA
    assert full["timeout_at"] is not None
    [created] = await _staged(platform, "InquiryCreated")
    assert created["inquiry_id"] == inquiry["id"] and created["execution_id"] == execution.id
    assert await _staged(platform, "ExecutionCompleted") == []


async def test_waiting_execution_survives_the_liveness_monitor(platform: Platform) -> None:
    worker = await _worker(platform, heartbeat_age=3600)
    execution = await _waiting(platform, {"prompt": "Still there?"}, worker=worker.id)
    assert await LivenessMonitor(platform).sweep() == 0
    assert (await _row(platform, models.Execution, execution.id)).status == "running"


async def test_wrong_answer_is_422_naming_the_field(api: httpx.AsyncClient, platform: Platform) -> None:
    execution = await _waiting(platform, {"prompt": "Deploy?", "response_schema": APPROVAL_SCHEMA})
    inquiry = await _only_inquiry(api, execution.id)
    response = await api.post(
        f"/api/v1/inquiries/{inquiry['id']}/respond", json={"response": {"approved": "yes"}}
    )
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "VALIDATION_ERROR"
    assert body["error"].startswith(f"Invalid response for inquiry {inquiry['id']}: ")
    assert "/approved" in body["error"] and "'boolean'" in body["error"]
    missing = await api.post(f"/api/v1/inquiries/{inquiry['id']}/respond", json={"response": {}})
    assert missing.status_code == 422 and "'approved' is a required property" in missing.json()["error"]
    assert (await _row(platform, models.Execution, execution.id)).status == "running"


async def test_right_answer_completes_the_execution_with_it(
    api: httpx.AsyncClient, platform: Platform, user: models.Identity
) -> None:
    execution = await _waiting(
        platform, {"prompt": "Deploy?", "response_schema": APPROVAL_SCHEMA, "assigned_to": user.id}
    )
    inquiry = await _only_inquiry(api, execution.id)
    answer = {"approved": True, "comment": "go"}
    response = await api.post(f"/api/v1/inquiries/{inquiry['id']}/respond", json={"response": answer})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["message"] == "Response submitted successfully"
    assert body["data"]["status"] == "responded" and body["data"]["response"] == answer
    assert body["data"]["responded_at"] is not None
    done = (await api.get(f"/api/v1/executions/{execution.id}")).json()["data"]
    assert done["status"] == "completed"
    assert done["result"]["data"] == answer
    assert done["result"]["__inquiry_response"] == answer
    assert done["result"]["__inquiry_id"] == inquiry["id"]
    [completed] = await _staged(platform, "ExecutionCompleted")
    assert completed["execution_id"] == execution.id and completed["status"] == "completed"
    [responded] = await _staged(platform, "InquiryResponded")
    assert responded["responded_by"] == user.id and responded["response"] == answer
    again = await api.post(f"/api/v1/inquiries/{inquiry['id']}/respond", json={"response": answer})
    assert again.status_code == 400
    assert again.json()["error"] == (
        "Cannot respond to inquiry with status 'Responded'. Only pending inquiries can be responded to."
    )


async def test_only_the_assignee_may_answer(
    api: httpx.AsyncClient, app: Any, platform: Platform, user: models.Identity, password_hash: str
) -> None:
    execution = await _waiting(platform, {"prompt": "Deploy?", "assigned_to": user.id})
    inquiry = await _only_inquiry(api, execution.id)
    async with await _client_for(app, platform, "mallory", password_hash) as other:
        response = await other.post(f"/api/v1/inquiries/{inquiry['id']}/respond", json={"response": "yes"})
    assert response.status_code == 403
    assert response.json() == {
        "error": "You are not authorized to respond to this inquiry",
        "code": "FORBIDDEN",
    }
    assert (await _row(platform, models.Execution, execution.id)).status == "running"


async def test_expired_inquiry_times_the_execution_out(
    api: httpx.AsyncClient, platform: Platform, fake_clock: FakeClock
) -> None:
    execution = await _waiting(platform, {"prompt": "Quick!", "timeout_seconds": 60})
    inquiry = await _only_inquiry(api, execution.id)
    fake_clock.advance(50)
    assert await InquiryTimeoutMonitor(platform).sweep() == 0  # still within its minute
    # Past it (with slack: the inquiry's deadline was stamped by the system clock while the test ran).
    fake_clock.advance(15)
    assert await InquiryTimeoutMonitor(platform).sweep() == 1
    stored = await _row(platform, models.Execution, execution.id)
    assert stored.status == "timeout"
    assert stored.result["error"] == f"Inquiry {inquiry['id']} timed out"
    assert (await _row(platform, models.Inquiry, inquiry["id"])).status == "timeout"
    [completed] = await _staged(platform, "ExecutionCompleted")
    assert completed["status"] == "timeout"
    assert await InquiryTimeoutMonitor(platform).sweep() == 0


async def test_late_answer_is_400_and_times_the_inquiry_out(
    api: httpx.AsyncClient, platform: Platform, fake_clock: FakeClock
) -> None:
    execution = await _waiting(platform, {"prompt": "Quick!", "timeout_seconds": 60})
    inquiry = await _only_inquiry(api, execution.id)
    fake_clock.advance(65)  # past its minute (slack: its deadline was stamped by the system clock)
    response = await api.post(f"/api/v1/inquiries/{inquiry['id']}/respond", json={"response": "late"})
    assert response.status_code == 400
    assert response.json()["error"] == "Inquiry has timed out and can no longer be responded to"
    assert (await _row(platform, models.Inquiry, inquiry["id"])).status == "timeout"
    assert (await _row(platform, models.Execution, execution.id)).status == "timeout"


async def test_malformed_request_fails_the_execution(platform: Platform) -> None:
    execution = await _execution(platform, worker=3)
    result = {"succeeded": True, "data": {"__inquiry": {"prompt": "", "timeout_seconds": -1}}}
    assert await finish(platform.db, execution, "completed", result, action_id=0) == "failed"
    stored = await _row(platform, models.Execution, execution.id)
    assert stored.result["error"].startswith("Invalid inquiry request: prompt")
    unknown = await _execution(platform, worker=3)
    request = {"data": {"__inquiry": {"prompt": "Hi", "assigned_to": "nobody"}}}
    assert await finish(platform.db, unknown, "completed", request, action_id=0) == "failed"
    stored = await _row(platform, models.Execution, unknown.id)
    assert "no identity with login 'nobody'" in stored.result["error"]


async def test_failed_run_with_inquiry_output_does_not_wait(platform: Platform) -> None:
    execution = await _execution(platform, worker=3)
    result = {"succeeded": False, "error": "boom", "data": {"__inquiry": {"prompt": "Hi"}}}
    assert await finish(platform.db, execution, "failed", result, action_id=0) == "failed"
    async with platform.db.session() as session:
        assert (await session.execute(sa.select(sa.func.count()).select_from(models.Inquiry))).scalar() == 0


async def test_cancel_ends_a_waiting_execution_at_once(api: httpx.AsyncClient, platform: Platform) -> None:
    execution = await _waiting(platform, {"prompt": "Deploy?"})
    inquiry = await _only_inquiry(api, execution.id)
    response = await api.post(f"/api/v1/executions/{execution.id}/cancel")
    assert response.status_code == 200, response.text
    assert response.json()["data"]["status"] == "cancelled"
    assert (await _row(platform, models.Inquiry, inquiry["id"])).status == "cancelled"
    [completed] = await _staged(platform, "ExecutionCompleted")
    assert completed["status"] == "cancelled"
    async with platform.db.session() as session:
        statuses = (
            await session.execute(
                sa.select(models.ExecutionHistory.new_values).where(
                    models.ExecutionHistory.entity_id == execution.id
                )
            )
        ).scalars()
        assert sum(1 for values in statuses if (values or {}).get("status") == "cancelled") == 1


async def test_deleting_a_pending_inquiry_ends_the_waiting_execution(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    execution = await _waiting(platform, {"prompt": "Deploy?"})
    inquiry = await _only_inquiry(api, execution.id)
    response = await api.delete(f"/api/v1/inquiries/{inquiry['id']}")
    assert response.json() == {"success": True, "message": "Inquiry deleted successfully"}
    stored = await _row(platform, models.Execution, execution.id)
    assert stored.status == "cancelled"
    assert stored.result["error"] == f"Inquiry {inquiry['id']} was deleted"
    assert (await api.get(f"/api/v1/inquiries/{inquiry['id']}")).status_code == 404


# --------------------------------------------------------------------------- the routes


async def test_create_get_update_and_delete(
    api: httpx.AsyncClient, platform: Platform, user: models.Identity
) -> None:
    execution = await _execution(platform, status="completed")
    response = await api.post(
        "/api/v1/inquiries",
        json={"execution": execution.id, "prompt": "Why?", "assigned_to": user.id, "response_schema": None},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["message"] == "Inquiry created successfully"
    created = body["data"]
    assert set(created) == {
        "id",
        "execution",
        "prompt",
        "response_schema",
        "assigned_to",
        "status",
        "response",
        "timeout_at",
        "responded_at",
        "created",
        "updated",
    }
    assert created["status"] == "pending" and created["assigned_to"] == user.id
    assert await _staged(platform, "InquiryCreated") == []

    got = await api.get(f"/api/v1/inquiries/{created['id']}")
    assert got.json()["data"] == created

    unchanged = await api.put(f"/api/v1/inquiries/{created['id']}", json={"status": None})
    assert unchanged.json()["data"]["updated"] == created["updated"]
    # Status and response change only through /respond or the timeout (docs/inquiries.md).
    refused = await api.put(f"/api/v1/inquiries/{created['id']}", json={"status": "cancelled", "response": 1})
    assert refused.status_code == 422 and refused.json()["code"] == "VALIDATION_ERROR"
    updated = await api.put(
        f"/api/v1/inquiries/{created['id']}", json={"assigned_to": None, "status": "pending"}
    )
    assert updated.status_code == 200
    assert updated.json()["message"] == "Inquiry updated successfully"
    assert updated.json()["data"]["status"] == "pending" and updated.json()["data"]["response"] is None

    deleted = await api.delete(f"/api/v1/inquiries/{created['id']}")
    assert deleted.status_code == 200
    assert (await api.delete(f"/api/v1/inquiries/{created['id']}")).status_code == 404


async def test_create_errors(api: httpx.AsyncClient, platform: Platform) -> None:
    missing = await api.post("/api/v1/inquiries", json={"execution": 999, "prompt": "Hi"})
    assert missing.status_code == 404
    assert missing.json() == {"error": "Execution with ID 999 not found", "code": "NOT_FOUND"}
    execution = await _execution(platform)
    empty = await api.post("/api/v1/inquiries", json={"execution": execution.id, "prompt": ""})
    assert empty.status_code == 422 and empty.json()["code"] == "VALIDATION_ERROR"
    nobody = await api.post(
        "/api/v1/inquiries", json={"execution": execution.id, "prompt": "Hi", "assigned_to": 4242}
    )
    assert nobody.status_code == 422 and nobody.json()["code"] == "UNPROCESSABLE_ENTITY"
    no_key = await api.post("/api/v1/inquiries/1/respond", json={})
    assert no_key.status_code == 422
    assert (await api.post("/api/v1/inquiries/999/respond", json={"response": 1})).status_code == 404


async def test_answering_an_api_created_inquiry_leaves_the_execution_alone(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    execution = await _execution(platform, status="completed")
    created = (
        await api.post("/api/v1/inquiries", json={"execution": execution.id, "prompt": "Rate it"})
    ).json()["data"]
    response = await api.post(f"/api/v1/inquiries/{created['id']}/respond", json={"response": 5})
    assert response.status_code == 200
    stored = await _row(platform, models.Execution, execution.id)
    assert stored.status == "completed"
    assert stored.result == {"__inquiry_response": 5, "__inquiry_id": created["id"]}
    assert await _staged(platform, "ExecutionCompleted") == []


async def test_lists_filters_and_pagination(
    api: httpx.AsyncClient, platform: Platform, user: models.Identity
) -> None:
    first = await _execution(platform)
    second = await _execution(platform)
    ids = []
    for execution_id, assignee in ((first.id, user.id), (first.id, None), (second.id, None)):
        body = {"execution": execution_id, "prompt": "Q", "assigned_to": assignee}
        ids.append((await api.post("/api/v1/inquiries", json=body)).json()["data"]["id"])
    # PUT no longer changes a status (docs/inquiries.md): the row is cancelled directly.
    async with platform.db.transaction() as session:
        row = await session.get(models.Inquiry, ids[2])
        assert row is not None
        row.status = "cancelled"

    page = (await api.get("/api/v1/inquiries", params={"limit": 2, "offset": 2})).json()
    assert page["pagination"] == {
        "page": 2,
        "page_size": 2,
        "total_items": 3,
        "total_pages": 2,
        "has_next": False,
        "has_previous": True,
    }
    assert [item["id"] for item in page["data"]] == [ids[0]]
    everything = (await api.get("/api/v1/inquiries")).json()["data"]
    assert [item["id"] for item in everything] == list(reversed(ids))
    assert set(everything[0]) == {
        "id",
        "execution",
        "prompt",
        "assigned_to",
        "status",
        "has_response",
        "timeout_at",
        "created",
    }

    def listed(response: httpx.Response) -> list[int]:
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["data"]]

    assert listed(await api.get("/api/v1/inquiries", params={"execution": first.id})) == [ids[1], ids[0]]
    assert listed(await api.get("/api/v1/inquiries", params={"assigned_to": user.id})) == [ids[0]]
    # status wins over execution
    assert listed(
        await api.get("/api/v1/inquiries", params={"status": "cancelled", "execution": first.id})
    ) == [ids[2]]
    assert (await api.get("/api/v1/inquiries", params={"status": "bogus"})).status_code == 400
    assert listed(await api.get("/api/v1/inquiries/status/canceled")) == [ids[2]]
    assert listed(await api.get("/api/v1/inquiries/status/cancelled")) == [ids[2]]
    assert listed(await api.get("/api/v1/inquiries/status/pending")) == [ids[1], ids[0]]
    bad = await api.get("/api/v1/inquiries/status/answered")
    assert bad.status_code == 400 and bad.json()["error"] == "Invalid inquiry status: answered"
    assert listed(await api.get(f"/api/v1/executions/{second.id}/inquiries")) == [ids[2]]
    assert (await api.get("/api/v1/executions/999/inquiries")).status_code == 404
