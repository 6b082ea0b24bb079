"""A waiting webhook follows its event's runs through notifications (attune.api.waiting.EventRuns)."""

from __future__ import annotations

from typing import Any

from attune.api.waiting import EventRuns
from attune.notifier.hub import Notification

TRIGGER = "demo.hook"


def enforcement(enforcement_id: int, event: int, trigger_ref: str = TRIGGER) -> Notification:
    payload = {"id": enforcement_id, "event": event, "trigger_ref": trigger_ref, "status": "created"}
    return _notification("enforcement_created", "enforcement", enforcement_id, payload)


def execution(
    execution_id: int, enforcement_id: int, status: str, *, created: bool = False, trigger_ref: str = TRIGGER
) -> Notification:
    kind = "execution_created" if created else "execution_status_changed"
    payload = {
        "id": execution_id,
        "enforcement": enforcement_id,
        "trigger_ref": trigger_ref,
        "status": status,
    }
    return _notification(kind, "execution", execution_id, payload)


def _notification(kind: str, entity_type: str, entity_id: int, payload: dict[str, Any]) -> Notification:
    return Notification.of(
        {"notification_type": kind, "entity_type": entity_type, "entity_id": entity_id, "payload": payload}
    )


def runs_of(event_id: int) -> EventRuns:
    runs = EventRuns(TRIGGER, listened=1)
    runs.event_id = event_id
    return runs


def runs_with(event_id: int, *, enforcements: dict[int, int], requested: dict[int, int]) -> EventRuns:
    """The runs of ``event_id`` once they have seen ``enforcements`` created (id: its event), then
    ``requested`` executions created (id: its enforcement)."""
    runs = runs_of(event_id)
    for enforcement_id, event in enforcements.items():
        runs.seen(enforcement(enforcement_id, event=event))
    for execution_id, enforcement_id in requested.items():
        runs.seen(execution(execution_id, enforcement_id, "requested", created=True))
    return runs


def test_runs_of_the_event_end_with_their_terminal_status() -> None:
    runs = runs_of(7)
    assert not runs.seen(enforcement(3, event=7))  # no run yet
    assert not runs.seen(execution(11, 3, "requested", created=True))
    assert not runs.seen(execution(11, 3, "running"))
    assert runs.seen(execution(11, 3, "completed"))


def test_every_run_of_the_event_must_end() -> None:
    runs = runs_with(7, enforcements={3: 7, 4: 7}, requested={11: 3, 12: 4})
    assert not runs.seen(execution(11, 3, "failed"))
    assert runs.seen(execution(12, 4, "completed"))


def test_runs_of_other_events_of_the_trigger_do_not_count() -> None:
    runs = runs_with(7, enforcements={3: 7, 5: 8}, requested={11: 3})
    assert not runs.seen(execution(13, 5, "completed", created=True))
    assert runs.seen(execution(11, 3, "completed"))


def test_a_run_seen_before_its_enforcement_counts_once_the_enforcement_shows() -> None:
    # Two processes relay the enforcement and the execution: their order may cross.
    runs = runs_of(7)
    assert not runs.seen(execution(11, 3, "running", created=True))
    assert not runs.seen(execution(11, 3, "completed"))
    assert runs.seen(enforcement(3, event=7))


def test_the_database_view_wins() -> None:
    runs = runs_of(7)
    runs.seen(enforcement(3, event=7))
    runs.seen(execution(11, 3, "completed", created=True))
    runs.adopt({11: "completed", 12: "running"})  # a run the notifications have not shown yet
    assert not runs.over()
    assert runs.seen(execution(12, 4, "timeout"))


def test_the_subscription_takes_only_the_trigger_s_enforcements_and_runs() -> None:
    runs = runs_of(7)
    assert runs.wants(enforcement(3, event=7))
    assert not runs.wants(enforcement(3, event=7, trigger_ref="other.hook"))
    assert runs.wants(execution(11, 3, "requested", created=True))
    assert not runs.wants(execution(21, 9, "requested", created=True, trigger_ref="other.hook"))
    runs.adopt({21: "running"})  # known from the database: followed whatever its payload says
    assert runs.wants(execution(21, 9, "completed", trigger_ref="other.hook"))
