"""History recording rules (docs/operations.md) and change-notification rules as pure functions."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from attune.db.changes import notifications_for
from attune.db.history import EXECUTION_HISTORY as EXE
from attune.db.history import WORKER_HISTORY as WRK
from attune.db.history import RowChange, diff, digest, history_row, is_distinct, json_value
from attune.domain.enums import ExecutionStatus

T0 = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)


def execution_row(**overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": 7,
        "action": 3,
        "action_ref": "core.echo",
        "status": "requested",
        "executor": 1,
        "parent": None,
        "enforcement": None,
        "result": None,
        "workflow_task": None,
        "env_vars": None,
        "config": {"message": "hi"},
        "is_workflow": False,
        "workflow_def": None,
        "created": T0,
        "updated": T0,
    }
    row.update(overrides)
    return row


def worker_row(**overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": 2,
        "name": "worker-a",
        "worker_type": "local",
        "worker_role": "action",
        "status": "active",
        "host": "h1",
        "port": None,
        "capabilities": {"runtimes": ["python"]},
        "meta": None,
        "last_heartbeat": T0,
    }
    row.update(overrides)
    return row


# --------------------------------------------------------------------------- digest


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ({"b": 1, "a": [1, 2]}, "object"),
        ([1, "x"], "array"),
        ("héllo", "string"),
        (3.5, "number"),
        (0, "number"),
        (False, "boolean"),
    ],
)
def test_digest_summarises_the_canonical_json_text(value: Any, kind: str) -> None:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert digest(value) == {
        "digest": "md5:" + hashlib.md5(text, usedforsecurity=False).hexdigest(),
        "size": len(text),
        "type": kind,
    }


def test_digest_of_null_is_null_and_key_order_does_not_matter() -> None:
    assert digest(None) is None
    assert digest({"a": 1, "b": 2}) == digest({"b": 2, "a": 1})
    assert digest({"a": 1}) != digest({"a": 2})
    # Size counts UTF-8 bytes, not characters.
    assert digest("é") == {"digest": digest("é")["digest"], "size": 4, "type": "string"}  # type: ignore[index]


# --------------------------------------------------------------------------- NULL-safe diff


def test_is_distinct_is_null_safe_and_json_typed() -> None:
    assert not is_distinct(None, None)
    assert is_distinct(None, "x") and is_distinct("x", None)
    assert not is_distinct({"a": [1]}, {"a": [1]})
    assert is_distinct(1, True)
    assert not is_distinct("running", ExecutionStatus.RUNNING)
    assert is_distinct("running", ExecutionStatus.COMPLETED)
    assert is_distinct(None, {}) and is_distinct([], None) and is_distinct(None, 0)
    assert is_distinct("1", 1) and not is_distinct(1.0, 1.0)


def test_update_diff_lists_changed_fields_in_table_order_with_a_result_digest() -> None:
    old = execution_row(status="running")
    new = execution_row(status="completed", result={"stdout": "ok"}, config={"other": 1})
    changed, old_values, new_values = diff(EXE, old, new) or ([], {}, {})
    assert changed == ["status", "result"]
    assert old_values == {"status": "running", "result": None}
    assert new_values == {"status": "completed", "result": digest({"stdout": "ok"})}


def test_update_of_untracked_fields_records_nothing() -> None:
    old = execution_row()
    new = execution_row(config={"changed": True}, updated=datetime(2025, 1, 1, tzinfo=UTC))
    assert diff(EXE, old, new) is None
    change = RowChange("execution", "UPDATE", 7, old, new)
    assert history_row(change) is None


def test_heartbeat_only_worker_update_records_nothing_but_status_does() -> None:
    old = worker_row()
    assert (
        history_row(RowChange("worker", "UPDATE", 2, old, worker_row(last_heartbeat=datetime.now(UTC))))
        is None
    )
    row = history_row(RowChange("worker", "UPDATE", 2, old, worker_row(status="inactive", name="worker-b")))
    assert row == {
        "operation": "UPDATE",
        "entity_id": 2,
        "entity_ref": "worker-b",
        "changed_fields": ["name", "status"],
        "old_values": {"name": "worker-a", "status": "active"},
        "new_values": {"name": "worker-b", "status": "inactive"},
    }


def test_insert_and_delete_rows() -> None:
    inserted = history_row(RowChange("execution", "INSERT", 7, None, execution_row(parent=4)))
    assert inserted == {
        "operation": "INSERT",
        "entity_id": 7,
        "entity_ref": "core.echo",
        "changed_fields": [],
        "old_values": None,
        "new_values": {
            "status": "requested",
            "action_ref": "core.echo",
            "executor": 1,
            "parent": 4,
            "enforcement": None,
        },
    }
    deleted = history_row(RowChange("worker", "DELETE", 2, worker_row(), None))
    assert deleted == {
        "operation": "DELETE",
        "entity_id": 2,
        "entity_ref": "worker-a",
        "changed_fields": [],
        "old_values": None,
        "new_values": None,
    }
    assert WRK.insert_fields == ("name", "worker_type", "worker_role", "status", "host", "port")


def test_json_value_renders_datetimes_as_rfc3339_utc() -> None:
    assert json_value(T0) == "2024-05-01T12:30:00Z"
    assert json_value(ExecutionStatus.FAILED) == "failed"
    assert json.dumps(history_row(RowChange("execution", "INSERT", 7, None, execution_row())))


# --------------------------------------------------------------------------- notification rules


def test_execution_notifications_carry_ids_and_status_but_never_the_result() -> None:
    old = execution_row(status="running", enforcement=9)
    new = execution_row(status="completed", enforcement=9, result={"huge": "x" * 10_000}, is_workflow=True)
    notices = notifications_for(RowChange("execution", "UPDATE", 7, old, new), {9: ("p.rule", "p.trigger")})
    assert [n.channel for n in notices] == ["execution_status_changed", "workflow_execution_status_changed"]
    status = notices[0].payload
    assert status["rule_ref"] == "p.rule" and status["trigger_ref"] == "p.trigger"
    assert (status["status"], status["old_status"]) == ("completed", "running")
    assert status["created"] == "2024-05-01T12:30:00Z"
    assert all("result" not in n.payload for n in notices)


def test_execution_update_without_a_status_change_notifies_nothing() -> None:
    old = execution_row(status="running")
    new = execution_row(status="running", result={"partial": True})
    assert notifications_for(RowChange("execution", "UPDATE", 7, old, new), {}) == []


def test_inquiry_responded_fires_only_on_the_transition_to_responded() -> None:
    pending = {"id": 5, "execution": 7, "status": "pending", "response": None}
    responded = {**pending, "status": "responded", "response": {"ok": True}}
    fired = notifications_for(RowChange("inquiry", "UPDATE", 5, pending, responded), {})
    assert [n.channel for n in fired] == ["inquiry_responded"]
    assert fired[0].payload["response"] == {"ok": True}
    assert notifications_for(RowChange("inquiry", "UPDATE", 5, responded, responded), {}) == []
    timed_out = {**pending, "status": "timeout"}
    assert notifications_for(RowChange("inquiry", "UPDATE", 5, pending, timed_out), {}) == []


def test_generic_notification_rows_notify_their_own_channel() -> None:
    row = {
        "id": 1,
        "channel": "attune_notifications",
        "entity_type": "pack",
        "entity": "12",
        "activity": "created",
    }
    (notice,) = notifications_for(RowChange("notification", "INSERT", 1, None, row), {})
    assert (notice.channel, notice.entity_type, notice.entity_id) == ("attune_notifications", "pack", 12)
    assert notice.payload == {"id": 1, "entity_type": "pack", "entity": "12", "activity": "created"}
